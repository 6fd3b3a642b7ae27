// rollback all|N (golang-migrate's down [N], down -all): roll back every applied migration, or
// the last N. Rolling back everything asks first on a terminal.

#include <algorithm>
#include <cstdint>

#include <fmt/format.h>
#include <fmt/ostream.h>

#include "cli/cli.hpp"
#include "cli/command.hpp"
#include "cli/human_output.hpp"
#include "cli/run_report.hpp"
#include "cli/signals.hpp"

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
  ConsoleObserver observer(ctx.out, ctx.err, ctx.settings.verbose);
  Migrator m = open_migrator(ctx, &observer);
  if (ask) {
    DbState s = m.state();
    if (s.version && !confirm(ctx, fmt::format("Roll back every migration of {} (now at version "
                                               "{})? This runs the down migrations.",
                                               m.driver().describe(), to_string(s.version)))) {
      fmt::print(ctx.err, "Not rolling back: nothing was changed\n");
      return kExitFailed;
    }
  }
  SignalScope signals(m);
  Result r = count ? m.steps(-static_cast<std::int64_t>(std::min<std::uint64_t>(*count, INT64_MAX)))
                   : m.down();
  return report_run(ctx, r, Direction::kDown);
}

}  // namespace dbstep::cli
