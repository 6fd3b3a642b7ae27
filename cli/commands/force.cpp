// force V [--json]: record version V (or none) and clear the dirty flag without running SQL.

#include <fmt/format.h>
#include <fmt/ostream.h>

#include "cli/cli.hpp"
#include "cli/command.hpp"
#include "cli/json_output.hpp"

namespace dbstep::cli {

int cmd_force(Context& ctx) {
  const auto& pos = ctx.settings.positional;
  if (pos.size() != 2) throw UsageError("force needs one argument: a version, or -1 / none");
  OptVersion v;
  if (pos[1] != "-1" && pos[1] != "none") {
    if (is_negative_number(pos[1])) throw UsageError("argument V must be >= -1");
    v = parse_version(pos[1], "the argument of force");
  }
  Migrator m = open_migrator(ctx, nullptr);
  m.force(v);
  if (ctx.settings.json) {
    write_force_json(ctx.out, v);
  } else if (!ctx.settings.quiet) {
    fmt::print(ctx.out, "Version set to {} (clean); no SQL was run\n", to_string(v));
  }
  return kExitOk;
}

}  // namespace dbstep::cli
