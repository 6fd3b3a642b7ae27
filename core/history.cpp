#include "core/history.hpp"

#include <pwd.h>
#include <unistd.h>

#include <array>
#include <cstdlib>
#include <ctime>

#include <fmt/format.h>

#ifndef DBSTEP_RELEASE
#define DBSTEP_RELEASE "dev"
#endif

namespace dbstep {

namespace {
constexpr std::array<std::pair<HistoryKind, std::string_view>, 5> kKinds = {{
    {HistoryKind::kApplied, "applied"},
    {HistoryKind::kFailed, "failed"},
    {HistoryKind::kBaseline, "baseline"},
    {HistoryKind::kForced, "forced"},
    {HistoryKind::kRepaired, "repaired"},
}};
}  // namespace

const char* to_string(HistoryKind kind) {
  for (const auto& [k, name] : kKinds) {
    if (k == kind) return name.data();
  }
  return "unknown";
}

std::optional<HistoryKind> parse_history_kind(std::string_view text) {
  for (const auto& [k, name] : kKinds) {
    if (name == text) return k;
  }
  return std::nullopt;
}

std::string default_history_table(std::string_view version_table) {
  return std::string(version_table) + "_history";
}

std::string current_user_at_host() {
  std::string user;
  if (const passwd* pw = ::getpwuid(::geteuid()); pw && pw->pw_name) user = pw->pw_name;
  if (user.empty()) {
    if (const char* u = std::getenv("USER"); u && *u) user = u;
  }
  if (user.empty()) user = std::to_string(::geteuid());
  std::array<char, 256> host{};
  if (::gethostname(host.data(), host.size() - 1) != 0) host[0] = '\0';
  return fmt::format("{}@{}", user, host[0] ? host.data() : "localhost");
}

std::string format_utc(std::chrono::system_clock::time_point t) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch());
  const std::time_t secs = static_cast<std::time_t>(ms.count() / 1000);
  std::tm tm{};
  ::gmtime_r(&secs, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms.count() % 1000);
}

const char* dbstep_release() { return DBSTEP_RELEASE; }

}  // namespace dbstep
