// migrate [all|N] (golang-migrate's up [N]): apply every pending migration, or the next N.

#include <algorithm>
#include <cstdint>

#include <fmt/format.h>

#include "cli/command.hpp"
#include "cli/run_report.hpp"

namespace dbstep::cli {

int cmd_migrate(Context& ctx) {
  const std::string command = ctx.settings.positional[0];
  if (ctx.settings.all) throw UsageError(fmt::format("{} does not take --all", command));
  const auto count = count_arg(ctx.settings, /*all_default=*/true);
  const auto n = count ? static_cast<std::int64_t>(std::min<std::uint64_t>(*count, INT64_MAX)) : 0;
  RunCommand run;
  run.dry_run = [&](Migrator& m) { return count ? m.dry_run_steps(n) : m.dry_run_up(); };
  run.run = [&](Migrator& m) { return count ? m.steps(n) : m.up(); };
  run.way = Direction::kUp;
  if (count && *count == 0) {
    // golang-migrate prints "no change"; "up to date" would be false with migrations pending.
    run.nothing = [&](const Result& r) {
      return fmt::format("No migration applied: {} 0 asks for none (the database stays at "
                         "version {})",
                         command, to_string(r.to));
    };
  }
  return run_or_dry_run(ctx, run);
}

}  // namespace dbstep::cli
