#pragma once
// What the run commands (migrate, rollback, goto, redo) share: the observer they print through,
// the end of a run printed for people or as JSON and turned into the exit code (cli.hpp): 0, 1
// for a failure (what was applied before it stays and is counted), 4 when fewer migrations were
// available than requested, 128 + the signal when stopped; and their --dry-run.

#include <functional>
#include <string>

#include "cli/command.hpp"
#include "cli/human_output.hpp"
#include "core/migrator.hpp"

namespace dbstep::cli {

// The settings' console mode: --verbose, --quiet, --json, and whether stdout is a terminal.
ConsoleMode console_mode(const Context& ctx);

// `nothing`: the line for a run that had nothing to do, instead of the usual one for `way`.
int report_run(Context& ctx, ConsoleObserver& observer, const Result& r, Direction way,
               const std::string& nothing = "");

// Runs the command: under --dry-run prints `dry_run(m)`'s plan (human or JSON) and returns the
// exit code the run would end with; otherwise runs `before_run` (if any: a question; a non-zero
// code ends the command) and `run(m)` with the signal handlers in place, and reports it. A run
// is reported in the direction of its first step, or `way` when it took none; `nothing` (if
// any) gives the line for a run that had nothing to do.
struct RunCommand {
  std::function<DryRun(Migrator&)> dry_run;
  std::function<Result(Migrator&)> run;
  Direction way = Direction::kUp;
  std::function<std::string(const Result&)> nothing;
  std::function<int(Migrator&)> before_run;
};
int run_or_dry_run(Context& ctx, const RunCommand& command);

}  // namespace dbstep::cli
