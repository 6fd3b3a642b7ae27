// rollback all|N (golang-migrate's down [N], down -all): roll back every applied migration, or
// the last N. Rolling back everything asks first on a terminal.

#include <unistd.h>

#include <algorithm>
#include <cstdint>

#include <fmt/format.h>
#include <fmt/ostream.h>

#include "cli/cli.hpp"
#include "cli/command.hpp"
#include "cli/run_report.hpp"

namespace dbstep::cli {

int cmd_rollback(Context& ctx) {
  const std::string command = ctx.settings.positional[0];
  std::optional<std::uint64_t> count;
  bool ask = false;
  if (ctx.settings.all) {
    // golang-migrate's down -all: everything, no question, no other argument.
    if (ctx.settings.positional.size() > 1) {
      throw UsageError("-all cannot be used with other arguments");
    }
  } else {
    // rollback needs an argument; golang-migrate's down alone means all (after asking).
    count = count_arg(ctx.settings, /*all_default=*/command == "down");
    ask = !count;
  }
  const auto n = count ? -static_cast<std::int64_t>(std::min<std::uint64_t>(*count, INT64_MAX)) : 0;
  RunCommand run;
  run.dry_run = [&](Migrator& m) { return count ? m.dry_run_steps(n) : m.dry_run_down(); };
  run.run = [&](Migrator& m) { return count ? m.steps(n) : m.down(); };
  run.way = Direction::kDown;
  run.before_run = [&](Migrator& m) {
    if (!ask) return kExitOk;
    if (ctx.settings.json && !ctx.settings.yes && ::isatty(STDIN_FILENO)) {
      // The question would land in the JSON document on stdout.
      throw UsageError(fmt::format("{} with --json rolls back every migration without asking: "
                                   "pass --yes too",
                                   command));
    }
    DbState s = m.state();
    if (s.version && !confirm(ctx, fmt::format("Roll back every migration of {} (now at version "
                                               "{})? This runs the down migrations.",
                                               m.driver().describe(), to_string(s.version)))) {
      fmt::print(ctx.err, "Not rolling back: nothing was changed\n");
      return kExitFailed;
    }
    return kExitOk;
  };
  if (count && *count == 0) {
    // golang-migrate prints "no change"; "up to date" would be false with migrations pending.
    run.nothing = [&](const Result& r) {
      return fmt::format("No migration rolled back: {} 0 asks for none (the database stays at "
                         "version {})",
                         command, to_string(r.to));
    };
  }
  return run_or_dry_run(ctx, run);
}

}  // namespace dbstep::cli
