#pragma once
// What every command of the `dbstep` executable gets, and the commands themselves, one file each
// under cli/commands/. A command reads its arguments from the settings, does its work through the
// public Migrator API, prints through cli/human_output.hpp or cli/json_output.hpp, and returns
// the exit code. It throws UsageError for a bad argument and lets dbstep::Error through; run()
// (cli.cpp) reports both.

#include <ostream>
#include <string>

#include "cli/arguments.hpp"
#include "core/migrator.hpp"

namespace dbstep::cli {

struct Context {
  Settings settings;
  std::ostream& out;
  std::ostream& err;
  bool terminal = false;  // `out` is the process's stdout and a terminal (progress line)
};

// Opens the database and the source named by the settings through the built-in registry, with
// the settings' options (lock timeout, --single-transaction, --ignore-checksums,
// --out-of-order), the signal handlers' stop flag and `observer` (borrowed, may be null).
Migrator open_migrator(Context& ctx, Observer* observer);

// Asks `question` on a terminal; true without asking under --yes or without a terminal.
bool confirm(Context& ctx, const std::string& question);

int cmd_migrate(Context& ctx);   // migrate [all|N], up [N]
int cmd_rollback(Context& ctx);  // rollback all|N, down [N] [-all]
int cmd_goto(Context& ctx);      // goto V
int cmd_version(Context& ctx);   // version [--json]
int cmd_force(Context& ctx);     // force V
int cmd_drop(Context& ctx);      // drop
int cmd_status(Context& ctx);    // status [--json] [--exit-code]
int cmd_validate(Context& ctx);  // validate [--json]
int cmd_baseline(Context& ctx);  // baseline V [--force]
int cmd_repair(Context& ctx);    // repair [--force V]
int cmd_schema(Context& ctx);    // schema dump | schema diff FILE [--json]
int cmd_verify(Context& ctx);    // verify [--from V] [--scratch URL] [--json]
int cmd_redo(Context& ctx);      // redo
int cmd_create(Context& ctx);    // create -ext E [-dir D] [-seq] [-digits N] [-format F] [-tz TZ] NAME

}  // namespace dbstep::cli
