// create NAME: a new pair of empty migration files, {version}_{NAME}.up{ext} and .down{ext}, with
// golang-migrate's flags and rules: -ext (required), -dir (default: the current folder, made if
// missing), -seq with -digits (default 6) for sequence numbers, else a timestamp written with the
// Go layout -format (default 20060102150405; unix, unixNano) in the zone -tz (default UTC).
// Needs no database and no source. Both files are created or neither: each is opened with O_EXCL
// (an existing file is never touched), and when the second cannot be made the first is removed,
// as are the folders made for them.
//
// Deliberately stricter than golang-migrate: -seq continues from the highest version in the
// folder (golang-migrate takes the last file name in sort order, so 9_x wins over 10_y); a
// version that exists with another width (3_x against 000003) is a duplicate too; a -format whose
// result is not a number, and a NAME with '/', are refused instead of making files that would not
// be read as migrations.

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <fmt/ostream.h>

#include "cli/cli.hpp"
#include "cli/command.hpp"
#include "cli/go_time_layout.hpp"
#include "cli/json_output.hpp"
#include "core/error.hpp"
#include "core/migration.hpp"

namespace dbstep::cli {

namespace {

namespace fs = std::filesystem;

constexpr const char* kDefaultFormat = "20060102150405";

bool all_digits(std::string_view s) {
  return !s.empty() && s.find_first_not_of("0123456789") == std::string_view::npos;
}

std::optional<Version> to_version(std::string_view digits) {
  Version v = 0;
  auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
  if (ec != std::errc() || p != digits.data() + digits.size()) return std::nullopt;
  return v;
}

// The folder's entries; none when it does not exist yet.
std::vector<std::string> entries_of(const fs::path& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return names;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    names.push_back(it->path().filename().string());
  }
  if (ec) {
    throw Error(ErrorCode::kSourceUnavailable,
                fmt::format("cannot list {}: {}", dir.string(), ec.message()));
  }
  return names;
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// -seq: one more than the highest version among the folder's *{ext} files, zero-padded to
// `digits`.
std::string next_sequence(const std::vector<std::string>& names, const std::string& ext,
                          int digits) {
  if (digits <= 0) throw UsageError("Digits must be positive");
  std::optional<Version> highest;
  for (const auto& n : names) {
    if (!ends_with(n, ext)) continue;
    const auto underscore = n.find('_');
    if (underscore == std::string::npos || !all_digits(std::string_view(n).substr(0, underscore))) {
      continue;
    }
    const auto v = to_version(std::string_view(n).substr(0, underscore));
    if (!v) {
      throw Error(ErrorCode::kInvalidArgument,
                  fmt::format("the version of {} does not fit in 64 bits", n));
    }
    if (!highest || *v > *highest) highest = v;
  }
  if (highest && *highest == std::numeric_limits<Version>::max()) {
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("Next sequence number after {} too large. It does not fit in 64 bits",
                            *highest));
  }
  const Version next = highest ? *highest + 1 : 1;
  std::string version = fmt::format("{:0{}}", next, digits);
  if (version.size() > static_cast<std::size_t>(digits)) {
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("Next sequence number {} too large. At most {} digits are allowed",
                            version, digits));
  }
  return version;
}

// A timestamp version: now in zone `tz`, written with the Go layout `format`.
std::string time_version(const std::string& format, const std::string& tz) {
  if (format.empty()) throw UsageError("Time format may not be empty");
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(now).count();
  if (format == "unix") return std::to_string(ns / 1'000'000'000);
  if (format == "unixNano") return std::to_string(ns);
  GoTime t;
  try {
    t = go_time_in_zone(ns / 1'000'000'000, static_cast<int>(ns % 1'000'000'000), tz);
  } catch (const std::invalid_argument& e) {
    throw UsageError(e.what());
  }
  std::string version = format_go_layout(format, t);
  if (!all_digits(version)) {
    throw UsageError(fmt::format("-format \"{}\" gives the version \"{}\", which is not a "
                                 "migration version (digits only): use a layout of digits such "
                                 "as 20060102150405, or unix",
                                 format, version));
  }
  return version;
}

// golang-migrate's duplicate check (a file {version}_*{ext}), and any migration file of the
// same version whatever its width or extension.
void refuse_duplicate(const std::vector<std::string>& names, const std::string& version,
                      const std::string& ext) {
  const auto number = to_version(version);
  for (const auto& n : names) {
    bool same = n.size() >= version.size() + 1 + ext.size() && n.rfind(version + "_", 0) == 0 &&
                ends_with(n, ext);
    if (!same && number) {
      try {
        const auto file = parse_file_name(n);
        same = file && file->version == *number;
      } catch (const Error&) {
        // A version over 64 bits is not this one.
      }
    }
    if (same) {
      Error e(ErrorCode::kDuplicateMigration,
              fmt::format("duplicate migration version: {} ({} has it); nothing was created",
                          version, n));
      e.file = n;
      e.version = number;
      throw e;
    }
  }
}

// Makes `dir` and its missing parents; returns the folders it made, outermost first.
std::vector<fs::path> make_folders(const fs::path& dir) {
  std::vector<fs::path> missing;
  std::error_code ec;
  for (fs::path p = dir; !p.empty() && !fs::exists(p, ec); p = p.parent_path()) {
    missing.insert(missing.begin(), p);
    if (p == p.parent_path()) break;
  }
  std::vector<fs::path> made;
  for (const auto& p : missing) {
    if (::mkdir(p.c_str(), 0777) != 0 && errno != EEXIST) {
      const int err = errno;
      for (auto it = made.rbegin(); it != made.rend(); ++it) ::rmdir(it->c_str());
      throw Error(ErrorCode::kSourceUnavailable,
                  fmt::format("cannot create the folder {}: {}; nothing was created", p.string(),
                              std::strerror(err)));
    }
    made.push_back(p);
  }
  if (!fs::is_directory(dir, ec)) {
    throw Error(ErrorCode::kSourceUnavailable,
                fmt::format("{} is not a folder; nothing was created", dir.string()));
  }
  return made;
}

// Creates `path` empty, never over an existing file; returns errno (0 on success).
int create_new(const fs::path& path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  if (fd < 0) return errno;
  return ::close(fd) == 0 ? 0 : errno;
}

}  // namespace

int cmd_create(Context& ctx) {
  const Settings& s = ctx.settings;
  const auto& pos = s.positional;
  if (pos.size() < 2) throw UsageError("please specify name");
  if (pos.size() > 2) {
    throw UsageError(fmt::format("create takes one NAME, not {} (\"{}\" ...)", pos.size() - 1,
                                 pos[2]));
  }
  const std::string& name = pos[1];
  if (!s.ext || s.ext->empty()) throw UsageError("-ext flag must be specified");
  if (name.find('/') != std::string::npos || name.find('\0') != std::string::npos) {
    throw UsageError(fmt::format("NAME \"{}\" must not contain '/': it becomes part of a file "
                                 "name; put the folder in -dir",
                                 name));
  }
  const std::string format = s.format.value_or(kDefaultFormat);
  if (s.seq && format != kDefaultFormat) {
    throw UsageError("The seq and format options are mutually exclusive");
  }
  int digits = 6;
  if (s.digits) {
    auto [p, ec] = std::from_chars(s.digits->data(), s.digits->data() + s.digits->size(), digits);
    if (ec != std::errc() || p != s.digits->data() + s.digits->size()) {
      throw UsageError(fmt::format("invalid value \"{}\" for flag -digits: a whole number", *s.digits));
    }
  }
  // golang-migrate: "." + the extension without one leading dot; the folder filepath.Clean'ed.
  const std::string ext = "." + (s.ext->front() == '.' ? s.ext->substr(1) : *s.ext);
  fs::path dir = fs::path(s.dir.value_or("")).lexically_normal();
  if (dir.empty()) dir = ".";
  if (dir.has_filename() == false && dir != dir.root_path()) dir = dir.parent_path();

  const std::vector<std::string> names = entries_of(dir);
  const std::string version = s.seq ? next_sequence(names, ext, digits)
                                    : time_version(format, s.tz.value_or("UTC"));
  const std::string up_name = fmt::format("{}_{}.up{}", version, name, ext);
  const std::string down_name = fmt::format("{}_{}.down{}", version, name, ext);
  std::optional<MigrationFile> parsed;
  try {
    parsed = parse_file_name(up_name);
  } catch (const Error& e) {
    throw UsageError(e.what());
  }
  if (!parsed || parsed->direction != Direction::kUp || parsed->identifier != name) {
    throw UsageError(fmt::format("{} would not be read as migration {} (check NAME and -ext)",
                                 up_name, version));
  }
  refuse_duplicate(names, version, ext);

  const std::vector<fs::path> made = make_folders(dir);
  auto remove_made_folders = [&] {
    for (auto it = made.rbegin(); it != made.rend(); ++it) ::rmdir(it->c_str());
  };
  const fs::path up = fs::absolute(dir / up_name).lexically_normal();
  const fs::path down = fs::absolute(dir / down_name).lexically_normal();
  if (int err = create_new(up); err != 0) {
    remove_made_folders();
    throw Error(ErrorCode::kSourceUnavailable,
                fmt::format("cannot create {}: {}; nothing was created", up.string(),
                            std::strerror(err)));
  }
  if (int err = create_new(down); err != 0) {
    ::unlink(up.c_str());
    remove_made_folders();
    throw Error(ErrorCode::kSourceUnavailable,
                fmt::format("cannot create {}: {}; {} was removed again, nothing was created",
                            down.string(), std::strerror(err), up.string()));
  }
  if (s.json) {
    write_create_json(ctx.out, parsed->version, name,
                      up.string(), down.string());
  } else {
    fmt::print(ctx.out, "{}\n{}\n", up.string(), down.string());
  }
  return kExitOk;
}

}  // namespace dbstep::cli
