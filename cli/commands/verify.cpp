// verify [--from V] [--scratch URL] [--json]: every migration up, down and up again on a scratch
// database, checking that each down restores the schema. The work is core's (core/verify.hpp);
// this file prints the report.

#include <chrono>
#include <cstdint>
#include <optional>

#include <fmt/format.h>
#include <fmt/ostream.h>
#include <nlohmann/json.hpp>

#include "cli/cli.hpp"
#include "cli/command.hpp"
#include "cli/signals.hpp"
#include "core/registry.hpp"
#include "core/url.hpp"
#include "core/verify.hpp"
#include "dbstep/dbstep.hpp"
#include "dbstep_embedded/default_migrations.hpp"

namespace dbstep::cli {

namespace {

nlohmann::json error_json(const Error& e) {
  auto or_null = [](const std::string& s) {
    return s.empty() ? nlohmann::json() : nlohmann::json(s);
  };
  nlohmann::json j{{"code", to_string(e.code())},
                   {"message", redact_secrets(e.what())},
                   {"file", or_null(e.file)},
                   {"line", e.line ? nlohmann::json(e.line) : nlohmann::json()},
                   {"sqlstate", or_null(e.sqlstate)}};
  return j;
}

void write_json(std::ostream& out, const VerifyReport& r) {
  nlohmann::json problems = nlohmann::json::array();
  for (const auto& p : r.problems) {
    problems.push_back({{"version", p.version},
                        {"identifier", p.identifier},
                        {"kind", to_string(p.kind)},
                        {"message", redact_secrets(p.message)},
                        {"difference", p.difference.empty() ? nlohmann::json()
                                                            : nlohmann::json(p.difference)},
                        {"error", p.error ? error_json(*p.error) : nlohmann::json()}});
  }
  nlohmann::json doc{
      {"ok", r.ok()},
      {"completed", r.completed},
      {"scratch", redact_secrets(r.scratch)},
      {"checked", r.checked},
      {"duration_ms",
       std::chrono::duration<double, std::milli>(r.duration).count()},
      {"problems", problems}};
  out << doc.dump(2) << "\n";
}

void print_report(Context& ctx, const VerifyReport& r, bool stopped) {
  for (const auto& p : r.problems) {
    fmt::print(ctx.out, "{}\n", redact_secrets(p.message));
    if (!p.difference.empty()) ctx.out << p.difference;
    ctx.out << "\n";
  }
  const double ms = std::chrono::duration<double, std::milli>(r.duration).count();
  const std::string took =
      ms >= 1000 ? fmt::format("{:.1f} s", ms / 1000) : fmt::format("{:.0f} ms", ms);
  if (stopped) {
    fmt::print(ctx.out, "Stopped after checking {} migration(s) on {} in {}: {} problem(s) so far; "
                        "the scratch database was removed\n",
               r.checked.size(), redact_secrets(r.scratch), took, r.problems.size());
  } else if (r.ok()) {
    fmt::print(ctx.out, "Checked {} migration(s) on {} in {}: each down restores the schema its "
                        "up found\n",
               r.checked.size(), redact_secrets(r.scratch), took);
  } else {
    fmt::print(ctx.out, "Checked {} migration(s) on {} in {}: {} problem(s){}\n",
               r.checked.size(), redact_secrets(r.scratch), took, r.problems.size(),
               r.completed ? "" : "; the migrations after the last one checked were not checked");
  }
}

}  // namespace

int cmd_verify(Context& ctx) {
  if (ctx.settings.positional.size() > 1) throw UsageError("verify takes no argument");
  if (ctx.settings.source.empty()) {
    throw UsageError("verify needs the migrations to check: -s DIR (or -s embedded:// for "
                     "dbstep's built-in set)");
  }
  Registry registry;
  register_builtin(registry, {&dbstep_embedded::default_migrations()});
  VerifyOptions options;
  if (!ctx.settings.from.empty()) options.from = parse_version(ctx.settings.from, "--from");
  options.lock_timeout = std::chrono::milliseconds(
      static_cast<std::int64_t>(ctx.settings.lock_timeout_s * 1000));
  options.stop = stop_flag();
  if (ctx.settings.verbose) {
    options.on_migration = [&](Version v, const std::string& id) {
      fmt::print(ctx.settings.json ? ctx.err : ctx.out, "Checking migration {}: {}\n", v, id);
    };
  }
  // Ctrl-C: the step running finishes, verify stops and drops the scratch database; a second
  // one cancels the step and exits at once (the scratch database may then stay behind).
  std::optional<SignalScope> signals;
  options.on_scratch = [&](Migrator* m) {
    if (m) {
      signals.emplace(*m);
    } else {
      signals.reset();
    }
  };
  std::optional<std::string> scratch;
  if (!ctx.settings.scratch.empty()) scratch = ctx.settings.scratch;
  const VerifyReport report =
      verify(registry, ctx.settings.database, ctx.settings.source, options, scratch);
  if (ctx.settings.json) {
    write_json(ctx.out, report);
  } else {
    print_report(ctx, report, stop_flag()->load());
  }
  if (stop_flag()->load()) return stopped_exit_code();
  return report.ok() ? kExitOk : kExitFailed;
}

}  // namespace dbstep::cli
