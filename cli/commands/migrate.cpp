// migrate [all|N] (golang-migrate's up [N]): apply every pending migration, or the next N.

#include <algorithm>
#include <cstdint>

#include <fmt/format.h>

#include "cli/command.hpp"
#include "cli/human_output.hpp"
#include "cli/run_report.hpp"
#include "cli/signals.hpp"

namespace dbstep::cli {

int cmd_migrate(Context& ctx) {
  const std::string command = ctx.settings.positional[0];
  if (ctx.settings.all) throw UsageError(fmt::format("{} does not take --all", command));
  auto count = count_arg(ctx.settings, /*all_default=*/true);
  ConsoleObserver observer(ctx.out, ctx.err, ctx.settings.verbose);
  Migrator m = open_migrator(ctx, &observer);
  SignalScope signals(m);
  Result r = count ? m.steps(static_cast<std::int64_t>(std::min<std::uint64_t>(*count, INT64_MAX)))
                   : m.up();
  return report_run(ctx, r, Direction::kUp);
}

}  // namespace dbstep::cli
