// redo: roll back the last applied migration and apply it again (Migrator::redo()): each step in
// its own transaction, or both in one with --single-transaction. With nothing applied it fails
// (exit 1) saying so; a dirty database is refused like every run.

#include "cli/command.hpp"
#include "cli/run_report.hpp"

namespace dbstep::cli {

int cmd_redo(Context& ctx) {
  if (ctx.settings.positional.size() > 1) throw UsageError("redo takes no argument");
  RunCommand run;
  run.dry_run = [](Migrator& m) { return m.dry_run_redo(); };
  run.run = [](Migrator& m) { return m.redo(); };
  run.way = Direction::kDown;
  return run_or_dry_run(ctx, run);
}

}  // namespace dbstep::cli
