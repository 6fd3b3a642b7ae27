// goto V: move up or down to exactly version V.

#include <fmt/format.h>
#include <fmt/ostream.h>

#include "cli/cli.hpp"
#include "cli/command.hpp"
#include "cli/human_output.hpp"
#include "cli/run_report.hpp"
#include "cli/signals.hpp"

namespace dbstep::cli {

int cmd_goto(Context& ctx) {
  const auto& pos = ctx.settings.positional;
  if (pos.size() != 2) throw UsageError("goto needs one argument: the version to move to");
  Version v = parse_version(pos[1], "the argument of goto");
  ConsoleObserver observer(ctx.out, ctx.err, ctx.settings.verbose);
  Migrator m = open_migrator(ctx, &observer);
  SignalScope signals(m);
  Result r = m.migrate_to(v);
  Direction way = !r.steps.empty() ? r.steps.front().direction : Direction::kUp;
  if (r.ok() && r.steps.empty() && !r.stopped) {
    fmt::print(ctx.out, "Database is already at version {}\n", to_string(r.to));
    return kExitOk;
  }
  return report_run(ctx, r, way);
}

}  // namespace dbstep::cli
