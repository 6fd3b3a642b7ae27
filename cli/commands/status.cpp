// status [--json] [--exit-code]: every migration in the source or the history with its state,
// when it ran and how long it took, and a summary. Read-only (Migrator::status()).

#include "cli/cli.hpp"
#include "cli/command.hpp"
#include "cli/human_output.hpp"
#include "cli/json_output.hpp"

namespace dbstep::cli {

int cmd_status(Context& ctx) {
  if (ctx.settings.positional.size() > 1) throw UsageError("status takes no argument");
  Migrator m = open_migrator(ctx, nullptr);
  const StatusReport report = m.status();
  if (ctx.settings.json) {
    write_status_json(ctx.out, report);
  } else {
    print_status(ctx.out, report, m.driver().describe(), ctx.settings.verbose);
  }
  // Deploy gates: anything left to apply, out-of-order migrations included.
  const bool pending = report.summary.pending + report.summary.out_of_order > 0;
  return ctx.settings.exit_code && pending ? kExitPending : kExitOk;
}

}  // namespace dbstep::cli
