// version [--json]: the database's version and dirty flag.

#include "cli/cli.hpp"
#include "cli/command.hpp"
#include "cli/human_output.hpp"
#include "cli/json_output.hpp"

namespace dbstep::cli {

int cmd_version(Context& ctx) {
  if (ctx.settings.positional.size() > 1) throw UsageError("version takes no argument");
  Migrator m = open_migrator(ctx, nullptr);
  const DbState s = m.state();
  if (ctx.settings.json) {
    write_version_json(ctx.out, s);
  } else {
    print_version(ctx.out, s);
  }
  return kExitOk;
}

}  // namespace dbstep::cli
