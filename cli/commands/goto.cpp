// goto V: move up or down to exactly version V.

#include <fmt/format.h>

#include "cli/command.hpp"
#include "cli/run_report.hpp"

namespace dbstep::cli {

int cmd_goto(Context& ctx) {
  const auto& pos = ctx.settings.positional;
  if (pos.size() != 2) throw UsageError("goto needs one argument: the version to move to");
  const Version v = parse_version(pos[1], "the argument of goto");
  RunCommand run;
  run.dry_run = [&](Migrator& m) { return m.dry_run_to(v); };
  run.run = [&](Migrator& m) { return m.migrate_to(v); };
  run.nothing = [](const Result& r) {
    return fmt::format("Database is already at version {}", to_string(r.to));
  };
  return run_or_dry_run(ctx, run);
}

}  // namespace dbstep::cli
