#pragma once
// The end of a run (migrate, rollback, goto): what it did, printed for people, turned into the
// exit code (cli.hpp): 0, 1 for a failure (what was applied before it stays and is counted),
// 4 when fewer migrations were available than requested, 128 + the signal when stopped.

#include "cli/command.hpp"
#include "core/migrator.hpp"

namespace dbstep::cli {

int report_run(Context& ctx, const Result& r, Direction way);

}  // namespace dbstep::cli
