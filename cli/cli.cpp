// run(): parse the arguments, find the command in the table, run it, and report what it threw.
// Each command lives in cli/commands/; what they print is formatted in cli/human_output.cpp and
// cli/json_output.cpp.

#include "cli/cli.hpp"

#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <functional>
#include <iostream>
#include <stdexcept>

#include <boost/program_options.hpp>
#include <fmt/format.h>
#include <fmt/ostream.h>
#include <fmt/ranges.h>

#include "cli/arguments.hpp"
#include "cli/command.hpp"
#include "cli/human_output.hpp"
#include "cli/json_output.hpp"
#include "core/error.hpp"
#include "core/url.hpp"

#ifndef DBSTEP_VERSION
#define DBSTEP_VERSION "dev"
#endif

namespace dbstep::cli {

namespace {

struct Command {
  std::vector<std::string> names;
  const char* usage;
  const char* help;
  std::function<int(Context&)> run;
  // The options only some commands take: "--json", "--exit-code", "--force". Any other command
  // refuses them (a usage error), so that a script's mistake is not silently ignored.
  std::vector<std::string> own_options;
};

const std::vector<Command>& commands() {
  static const std::vector<Command> kCommands = {
      {{"migrate", "up"}, "migrate [all|N]   (alias: up [N])",
       "Apply every pending migration (all, the default) or the next N, each in its own "
       "transaction. Refuses when applied migration files were edited (see validate) unless "
       "--ignore-checksums; --out-of-order first applies pending migrations below the current "
       "version.",
       cmd_migrate, {"--json", "--dry-run", "--backup"}},
      {{"rollback", "down"}, "rollback all|N   (alias: down [N] [-all])",
       "Roll back every applied migration (asks first on a terminal unless --yes) or the last N. "
       "`down` with no argument means all, as in golang-migrate.",
       cmd_rollback, {"--json", "--dry-run", "--backup"}},
      {{"goto"}, "goto V", "Move up or down to exactly version V.", cmd_goto,
       {"--json", "--dry-run", "--backup"}},
      {{"redo"}, "redo",
       "Roll back the last applied migration and apply it again (each step in its own "
       "transaction; both in one with --single-transaction).",
       cmd_redo, {"--json", "--dry-run", "--backup"}},
      {{"version"}, "version [--json]",
       "Print the database's version, with (dirty) if a migration failed outside a transaction.",
       cmd_version, {"--json"}},
      {{"status"}, "status [--json] [--exit-code]",
       "List every migration with its state (applied, pending, out of order, dirty; edited, file "
       "missing, applied before history), when it ran and how long it took. --exit-code: exit 3 "
       "when any is pending. Read-only.",
       cmd_status, {"--json", "--exit-code"}},
      {{"validate"}, "validate [--json]",
       "Check that applied migration files were not edited or removed, that none is pending below "
       "the current version and that the database is not dirty; exit 1 with each problem and "
       "what to do. Read-only.",
       cmd_validate, {"--json"}},
      {{"baseline"}, "baseline V [--force]",
       "Mark a database made without dbstep as at version V: the migrations up to V are recorded "
       "as applied, none is run. --force: even when the database already has a version.",
       cmd_baseline, {"--force"}},
      {{"repair"}, "repair [--force V]",
       "Accept the current checksums of edited applied migration files (after reviewing the "
       "edit). --force V: also record version V and clear the dirty flag, as force does.",
       cmd_repair, {"--force"}},
      {{"force"}, "force V",
       "Record version V (or -1/none) and clear the dirty flag without running any SQL.",
       cmd_force, {"--json"}},
      {{"create"}, "create -ext E [-dir D] [-seq] NAME",
       "Create an empty pair of migration files, {version}_NAME.up.E and .down.E, in D (made if "
       "missing; default: the current folder), as golang-migrate's create does: the version is "
       "the time in -tz TZ (default UTC) as the Go layout -format F (default 20060102150405; "
       "unix, unixNano), or with -seq the next number with -digits N digits (default 6). Prints "
       "both paths. Needs no database.",
       cmd_create, {"--json", "--ext", "--dir", "--seq", "--digits", "--format", "--tz"}},
      {{"drop"}, "drop",
       "Remove every table and view (and, on PostgreSQL, every object) in the database. Asks "
       "first on a terminal; needs --yes otherwise.",
       cmd_drop, {"--json"}},
      {{"schema"}, "schema dump | schema diff FILE [--json]",
       "dump: print the database's schema (dbstep's own tables left out) as a sorted text to "
       "save and diff. diff FILE: compare the database with a saved dump; exit 1 with the "
       "difference when they differ. Read-only.",
       cmd_schema, {"--json"}},
      {{"verify"}, "verify [--from V] [--scratch URL] [--json]",
       "On a scratch database (a temporary SQLite file, or a database made on the same "
       "PostgreSQL server and dropped afterwards; --scratch: an empty one of yours), run each "
       "migration up, down and up again; exit 1 naming every down that does not restore the "
       "schema (with the difference) or that fails. Leaves the -d database alone.",
       cmd_verify, {"--json"}},
  };
  return kCommands;
}

void print_help(std::ostream& os) {
  fmt::print(os,
             "dbstep {}: apply and reverse versioned SQL migrations (golang-migrate compatible)\n\n"
             "Usage: dbstep [options] COMMAND [args]\n\nCommands:\n",
             DBSTEP_VERSION);
  for (const auto& c : commands()) fmt::print(os, "  {:<42} {}\n", c.usage, c.help);
  os << "\n" << option_descriptions() << "\n";
  fmt::print(os,
             "Databases: sqlite://PATH, sqlite3://PATH, postgres://USER@HOST/DB\n"
             "Sources:   a folder path, file://DIR, embedded:// (dbstep's built-in example schema)\n"
             "Exit codes: 0 ok (nothing to do included), 1 failed, 2 usage error, 3 status "
             "--exit-code: migrations pending, 4 fewer migrations than requested, 130/143 stopped "
             "by SIGINT/SIGTERM\n");
}

// Refuses the command-specific options `command` does not take.
void check_own_options(const Command& command, const Settings& s) {
  for (const auto& [name, set] : {std::pair{"--scratch", !s.scratch.empty()},
                                  std::pair{"--from", !s.from.empty()}}) {
    if (set && command.names.front() != "verify") {
      throw UsageError(fmt::format("{} does not take {} (only verify does)", s.positional[0], name));
    }
  }
  const std::vector<std::pair<const char*, bool>> given = {
      {"--json", s.json}, {"--exit-code", s.exit_code}, {"--force", s.force},
      {"--dry-run", s.dry_run}, {"--backup", s.backup}, {"--ext", s.ext.has_value()},
      {"--dir", s.dir.has_value()}, {"--seq", s.seq}, {"--digits", s.digits.has_value()},
      {"--format", s.format.has_value()}, {"--tz", s.tz.has_value()}};
  for (const auto& [name, set] : given) {
    if (!set) continue;
    const auto& own = command.own_options;
    if (std::find(own.begin(), own.end(), name) == own.end()) {
      std::vector<std::string> takers;
      for (const auto& c : commands()) {
        if (std::find(c.own_options.begin(), c.own_options.end(), name) != c.own_options.end()) {
          takers.push_back(c.names.front());
        }
      }
      throw UsageError(fmt::format("{} does not take {} (only {} do)", s.positional[0], name,
                                   fmt::join(takers, ", ")));
    }
  }
}

int usage_error(std::ostream& out, std::ostream& err, bool json, const std::string& message,
                const std::string& help_hint) {
  if (json) write_error_json(out, "usage", message);
  fmt::print(err, "dbstep: {}\nRun '{}' for usage.\n", message, help_hint);
  return kExitUsage;
}

}  // namespace

int run(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  // A file-size limit (ulimit -f) would kill the process with SIGXFSZ and no message. Ignored,
  // the write fails with EFBIG instead and the database's error is reported like any other.
  std::signal(SIGXFSZ, SIG_IGN);
  Settings settings;
  try {
    settings = parse_args(args);
  } catch (const UsageError& e) {
    return usage_error(out, err, wants_json(args), e.what(), "dbstep --help");
  }
  if (settings.version) {
    fmt::print(out, "dbstep {}\n", DBSTEP_VERSION);
    return kExitOk;
  }
  if (settings.positional.empty()) {
    if (settings.json && !settings.help) {
      return usage_error(out, err, true, "no command given", "dbstep --help");
    }
    print_help(settings.help ? out : err);
    return settings.help ? kExitOk : kExitUsage;
  }
  const Command* command = nullptr;
  for (const auto& c : commands()) {
    if (std::find(c.names.begin(), c.names.end(), settings.positional[0]) != c.names.end()) {
      command = &c;
    }
  }
  if (!command) {
    return usage_error(out, err, settings.json,
                       fmt::format("unknown command \"{}\"", settings.positional[0]),
                       "dbstep --help");
  }
  if (settings.help) {
    fmt::print(out, "Usage: dbstep [options] {}\n\n{}\n\n", command->usage, command->help);
    out << option_descriptions();
    return kExitOk;
  }
  // The progress line is for a person watching: only when stdout is this process's terminal.
  const bool terminal = &out == &std::cout && ::isatty(STDOUT_FILENO);
  Context ctx{std::move(settings), out, err, terminal};
  const bool json = ctx.settings.json;
  try {
    check_own_options(*command, ctx.settings);
    return command->run(ctx);
  } catch (const UsageError& e) {
    return usage_error(out, err, json, e.what(),
                       fmt::format("dbstep {} --help", ctx.settings.positional[0]));
  } catch (const Error& e) {
    if (json) write_error_json(out, e);
    print_error(err, e, ctx.settings.verbose);
    return kExitFailed;
  } catch (const std::exception& e) {
    const std::string message = redact_secrets(e.what());
    if (json) write_error_json(out, "internal", message);
    fmt::print(err, "error: {}\n", message);
    return kExitFailed;
  }
}

}  // namespace dbstep::cli
