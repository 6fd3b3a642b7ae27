#include "cli/go_time_layout.hpp"

#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <optional>
#include <stdexcept>
#include <vector>

#include <fmt/format.h>

namespace dbstep::cli {

namespace {

// The elements of a layout, as Go names them (time/format.go).
enum class Element {
  kLongMonth, kMonth, kNumMonth, kZeroMonth,
  kLongWeekDay, kWeekDay,
  kDay, kUnderDay, kZeroDay, kUnderYearDay, kZeroYearDay,
  kHour, kHour12, kZeroHour12, kMinute, kZeroMinute, kSecond, kZeroSecond,
  kLongYear, kYear, kPM, kpm, kTZ,
  kISO8601TZ, kISO8601SecondsTZ, kISO8601ShortTZ, kISO8601ColonTZ, kISO8601ColonSecondsTZ,
  kNumTZ, kNumSecondsTz, kNumShortTZ, kNumColonTZ, kNumColonSecondsTZ,
  kFracSecond0, kFracSecond9,
};

struct Chunk {
  std::size_t at = 0;      // where the element starts; layout[..at) is literal text
  std::size_t length = 0;  // of the element in the layout
  Element element{};
  int digits = 0;          // fractions: how many
  char separator = '.';    // fractions: '.' or ','
};

bool starts_with(std::string_view s, std::size_t i, std::string_view prefix) {
  return s.size() >= i + prefix.size() && s.substr(i, prefix.size()) == prefix;
}

bool lower_at(std::string_view s, std::size_t i) {
  return i < s.size() && s[i] >= 'a' && s[i] <= 'z';
}

bool digit_at(std::string_view s, std::size_t i) {
  return i < s.size() && s[i] >= '0' && s[i] <= '9';
}

// The first element at or after `from`, in Go's order of recognition.
std::optional<Chunk> next_element(std::string_view layout, std::size_t from) {
  auto found = [](std::size_t at, std::size_t length, Element e) {
    return Chunk{at, length, e, 0, '.'};
  };
  for (std::size_t i = from; i < layout.size(); ++i) {
    switch (layout[i]) {
      case 'J':
        if (starts_with(layout, i, "Jan")) {
          if (starts_with(layout, i, "January")) return found(i, 7, Element::kLongMonth);
          if (!lower_at(layout, i + 3)) return found(i, 3, Element::kMonth);
        }
        break;
      case 'M':
        if (starts_with(layout, i, "Mon")) {
          if (starts_with(layout, i, "Monday")) return found(i, 6, Element::kLongWeekDay);
          if (!lower_at(layout, i + 3)) return found(i, 3, Element::kWeekDay);
        }
        if (starts_with(layout, i, "MST")) return found(i, 3, Element::kTZ);
        break;
      case '0':
        if (i + 1 < layout.size() && layout[i + 1] >= '1' && layout[i + 1] <= '6') {
          static constexpr Element kZeroed[] = {Element::kZeroMonth,  Element::kZeroDay,
                                                Element::kZeroHour12, Element::kZeroMinute,
                                                Element::kZeroSecond, Element::kYear};
          return found(i, 2, kZeroed[layout[i + 1] - '1']);
        }
        if (starts_with(layout, i, "002")) return found(i, 3, Element::kZeroYearDay);
        break;
      case '1':
        if (starts_with(layout, i, "15")) return found(i, 2, Element::kHour);
        return found(i, 1, Element::kNumMonth);
      case '2':
        if (starts_with(layout, i, "2006")) return found(i, 4, Element::kLongYear);
        return found(i, 1, Element::kDay);
      case '_':
        if (starts_with(layout, i, "_2")) {
          // "_2006" is a literal '_' and then the year.
          if (starts_with(layout, i + 1, "2006")) return found(i + 1, 4, Element::kLongYear);
          return found(i, 2, Element::kUnderDay);
        }
        if (starts_with(layout, i, "__2")) return found(i, 3, Element::kUnderYearDay);
        break;
      case '3': return found(i, 1, Element::kHour12);
      case '4': return found(i, 1, Element::kMinute);
      case '5': return found(i, 1, Element::kSecond);
      case 'P':
        if (starts_with(layout, i, "PM")) return found(i, 2, Element::kPM);
        break;
      case 'p':
        if (starts_with(layout, i, "pm")) return found(i, 2, Element::kpm);
        break;
      case '-':
        if (starts_with(layout, i, "-070000")) return found(i, 7, Element::kNumSecondsTz);
        if (starts_with(layout, i, "-07:00:00")) return found(i, 9, Element::kNumColonSecondsTZ);
        if (starts_with(layout, i, "-0700")) return found(i, 5, Element::kNumTZ);
        if (starts_with(layout, i, "-07:00")) return found(i, 6, Element::kNumColonTZ);
        if (starts_with(layout, i, "-07")) return found(i, 3, Element::kNumShortTZ);
        break;
      case 'Z':
        if (starts_with(layout, i, "Z070000")) return found(i, 7, Element::kISO8601SecondsTZ);
        if (starts_with(layout, i, "Z07:00:00")) {
          return found(i, 9, Element::kISO8601ColonSecondsTZ);
        }
        if (starts_with(layout, i, "Z0700")) return found(i, 5, Element::kISO8601TZ);
        if (starts_with(layout, i, "Z07:00")) return found(i, 6, Element::kISO8601ColonTZ);
        if (starts_with(layout, i, "Z07")) return found(i, 3, Element::kISO8601ShortTZ);
        break;
      case '.':
      case ',':
        // ".000" or ",999": fractional seconds, but only when the run of digits ends there.
        if (i + 1 < layout.size() && (layout[i + 1] == '0' || layout[i + 1] == '9')) {
          const char ch = layout[i + 1];
          std::size_t j = i + 1;
          while (j < layout.size() && layout[j] == ch) ++j;
          if (!digit_at(layout, j)) {
            Chunk c = found(i, j - i, ch == '0' ? Element::kFracSecond0 : Element::kFracSecond9);
            c.digits = static_cast<int>(j - i - 1);
            c.separator = layout[i];
            return c;
          }
        }
        break;
      default:
        break;
    }
  }
  return std::nullopt;
}

void append_int(std::string& out, long long value, int width) {
  if (value < 0) {
    out += '-';
    value = -value;
  }
  out += fmt::format("{:0{}}", value, width);
}

constexpr const char* kMonths[] = {"January", "February", "March",     "April",
                                   "May",     "June",     "July",      "August",
                                   "September", "October", "November", "December"};
constexpr const char* kDays[] = {"Sunday",   "Monday", "Tuesday", "Wednesday",
                                 "Thursday", "Friday", "Saturday"};

void append_offset(std::string& out, Element e, int offset_s) {
  const bool iso = e == Element::kISO8601TZ || e == Element::kISO8601SecondsTZ ||
                   e == Element::kISO8601ShortTZ || e == Element::kISO8601ColonTZ ||
                   e == Element::kISO8601ColonSecondsTZ;
  if (iso && offset_s == 0) {
    out += 'Z';
    return;
  }
  const bool colon = e == Element::kISO8601ColonTZ || e == Element::kNumColonTZ ||
                     e == Element::kISO8601ColonSecondsTZ || e == Element::kNumColonSecondsTZ;
  const bool seconds = e == Element::kISO8601SecondsTZ || e == Element::kNumSecondsTz ||
                       e == Element::kISO8601ColonSecondsTZ || e == Element::kNumColonSecondsTZ;
  const bool hours_only = e == Element::kISO8601ShortTZ || e == Element::kNumShortTZ;
  const int abs = offset_s < 0 ? -offset_s : offset_s;
  out += offset_s < 0 ? '-' : '+';
  append_int(out, abs / 3600, 2);
  if (!hours_only) {
    if (colon) out += ':';
    append_int(out, abs / 60 % 60, 2);
  }
  if (seconds) {
    if (colon) out += ':';
    append_int(out, abs % 60, 2);
  }
}

}  // namespace

std::string format_go_layout(std::string_view layout, const GoTime& t) {
  std::string out;
  std::size_t pos = 0;
  while (auto chunk = next_element(layout, pos)) {
    out.append(layout.substr(pos, chunk->at - pos));
    pos = chunk->at + chunk->length;
    const int hour12 = t.hour % 12 == 0 ? 12 : t.hour % 12;
    switch (chunk->element) {
      case Element::kYear: append_int(out, t.year % 100, 2); break;
      case Element::kLongYear: append_int(out, t.year, 4); break;
      case Element::kMonth: out += std::string_view(kMonths[t.month - 1]).substr(0, 3); break;
      case Element::kLongMonth: out += kMonths[t.month - 1]; break;
      case Element::kNumMonth: append_int(out, t.month, 0); break;
      case Element::kZeroMonth: append_int(out, t.month, 2); break;
      case Element::kWeekDay: out += std::string_view(kDays[t.weekday]).substr(0, 3); break;
      case Element::kLongWeekDay: out += kDays[t.weekday]; break;
      case Element::kDay: append_int(out, t.day, 0); break;
      case Element::kUnderDay:
        if (t.day < 10) out += ' ';
        append_int(out, t.day, 0);
        break;
      case Element::kZeroDay: append_int(out, t.day, 2); break;
      case Element::kUnderYearDay:
        if (t.yearday < 100) out += t.yearday < 10 ? "  " : " ";
        append_int(out, t.yearday, 0);
        break;
      case Element::kZeroYearDay: append_int(out, t.yearday, 3); break;
      case Element::kHour: append_int(out, t.hour, 2); break;
      case Element::kHour12: append_int(out, hour12, 0); break;
      case Element::kZeroHour12: append_int(out, hour12, 2); break;
      case Element::kMinute: append_int(out, t.minute, 0); break;
      case Element::kZeroMinute: append_int(out, t.minute, 2); break;
      case Element::kSecond: append_int(out, t.second, 0); break;
      case Element::kZeroSecond: append_int(out, t.second, 2); break;
      case Element::kPM: out += t.hour >= 12 ? "PM" : "AM"; break;
      case Element::kpm: out += t.hour >= 12 ? "pm" : "am"; break;
      case Element::kTZ:
        if (!t.zone.empty()) {
          out += t.zone;
        } else {
          append_offset(out, Element::kNumTZ, t.utc_offset_s);
        }
        break;
      case Element::kFracSecond0:
      case Element::kFracSecond9: {
        std::string digits = fmt::format("{:09}", t.nanosecond).substr(
            0, static_cast<std::size_t>(std::min(chunk->digits, 9)));
        if (chunk->element == Element::kFracSecond9) {
          while (!digits.empty() && digits.back() == '0') digits.pop_back();
          if (digits.empty()) break;
        }
        out += chunk->separator;
        out += digits;
        break;
      }
      default: append_offset(out, chunk->element, t.utc_offset_s); break;
    }
  }
  out.append(layout.substr(pos));
  return out;
}

namespace {

// The zoneinfo file Go's LoadLocation would read for `name`, if any.
std::optional<std::filesystem::path> zone_file(const std::string& name) {
  std::vector<std::filesystem::path> roots;
  if (const char* z = std::getenv("ZONEINFO"); z && *z) roots.emplace_back(z);
  for (const char* dir : {"/usr/share/zoneinfo", "/usr/share/lib/zoneinfo", "/usr/lib/locale/TZ",
                          "/etc/zoneinfo"}) {
    roots.emplace_back(dir);
  }
  for (const auto& root : roots) {
    const auto path = root / name;
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec)) continue;
    std::ifstream in(path, std::ios::binary);
    char magic[4] = {};
    if (in.read(magic, 4) && std::string_view(magic, 4) == "TZif") return path;
  }
  return std::nullopt;
}

GoTime from_tm(const std::tm& tm, int nanosecond) {
  GoTime t;
  t.year = tm.tm_year + 1900;
  t.month = tm.tm_mon + 1;
  t.day = tm.tm_mday;
  t.hour = tm.tm_hour;
  t.minute = tm.tm_min;
  t.second = tm.tm_sec;
  t.nanosecond = nanosecond;
  t.weekday = tm.tm_wday;
  t.yearday = tm.tm_yday + 1;
  t.utc_offset_s = static_cast<int>(tm.tm_gmtoff);
  t.zone = tm.tm_zone ? tm.tm_zone : "";
  return t;
}

}  // namespace

GoTime go_time_in_zone(std::int64_t unix_seconds, int nanosecond, const std::string& zone) {
  const std::time_t when = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  if (zone.empty() || zone == "UTC") {
    ::gmtime_r(&when, &tm);
    GoTime t = from_tm(tm, nanosecond);
    t.zone = "UTC";
    t.utc_offset_s = 0;
    return t;
  }
  if (zone == "Local") {
    ::tzset();
    ::localtime_r(&when, &tm);
    return from_tm(tm, nanosecond);
  }
  if (zone.find("..") != std::string::npos || zone[0] == '/' || zone[0] == '\\') {
    throw std::invalid_argument("time: invalid location name");
  }
  const auto file = zone_file(zone);
  if (!file) throw std::invalid_argument("unknown time zone " + zone);
  // glibc reads a zone from a file named in TZ (":PATH"); the process is single-threaded here and
  // TZ is put back at once.
  const char* old = std::getenv("TZ");
  const std::optional<std::string> saved = old ? std::optional<std::string>(old) : std::nullopt;
  ::setenv("TZ", (":" + file->string()).c_str(), 1);
  ::tzset();
  ::localtime_r(&when, &tm);
  GoTime t = from_tm(tm, nanosecond);
  if (saved) {
    ::setenv("TZ", saved->c_str(), 1);
  } else {
    ::unsetenv("TZ");
  }
  ::tzset();
  return t;
}

}  // namespace dbstep::cli
