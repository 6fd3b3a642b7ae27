// validate [--json]: status's checks as problems, each naming its file and what to do
// (Migrator::validate()). Exit 0 when there is none, 1 otherwise. Read-only.

#include "cli/cli.hpp"
#include "cli/command.hpp"
#include "cli/human_output.hpp"
#include "cli/json_output.hpp"

namespace dbstep::cli {

int cmd_validate(Context& ctx) {
  if (ctx.settings.positional.size() > 1) throw UsageError("validate takes no argument");
  Migrator m = open_migrator(ctx, nullptr);
  const std::vector<ValidationProblem> problems = m.validate();
  if (ctx.settings.json) {
    write_problems_json(ctx.out, problems);
  } else {
    print_problems(ctx.out, problems);
  }
  return problems.empty() ? kExitOk : kExitFailed;
}

}  // namespace dbstep::cli
