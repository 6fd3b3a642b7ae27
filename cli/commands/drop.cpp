// drop [--json]: remove everything in the database. Asks on a terminal; needs --yes without one.

#include <unistd.h>

#include <fmt/format.h>
#include <fmt/ostream.h>

#include "cli/cli.hpp"
#include "cli/command.hpp"
#include "cli/json_output.hpp"

namespace dbstep::cli {

int cmd_drop(Context& ctx) {
  if (ctx.settings.positional.size() > 1) throw UsageError("drop takes no argument");
  if (ctx.settings.json && !ctx.settings.yes) {
    // The question would land in the JSON document on stdout.
    throw UsageError("drop with --json needs --yes");
  }
  if (!ctx.settings.yes && !::isatty(STDIN_FILENO)) {
    throw UsageError("drop removes everything in the database: pass --yes to run it without a "
                     "terminal");
  }
  Migrator m = open_migrator(ctx, nullptr);
  if (!confirm(ctx, fmt::format("Drop everything in {}?", m.driver().describe()))) {
    fmt::print(ctx.err, "Not dropping: nothing was changed\n");
    return kExitFailed;
  }
  m.drop();
  if (ctx.settings.json) {
    write_drop_json(ctx.out, m.driver().describe());
  } else if (!ctx.settings.quiet) {
    fmt::print(ctx.out, "Dropped everything in {}\n", m.driver().describe());
  }
  return kExitOk;
}

}  // namespace dbstep::cli
