#pragma once
// Everything the CLI prints for people: a run as it happens (ConsoleObserver), errors, and the
// reports of version, status and validate. Normal output goes to `out` (stdout), errors, warnings
// and notes to `err` (stderr). The JSON forms of the same reports are in cli/json_output.hpp.

#include <chrono>
#include <ostream>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/migrator.hpp"
#include "core/status.hpp"

namespace dbstep::cli {

// "1.7 ms", "2.31 s".
std::string format_duration(std::chrono::nanoseconds d);

// How much a run prints on stdout while it happens.
struct ConsoleMode {
  bool verbose = false;   // also each step as it starts, and every lock wait
  bool quiet = false;     // nothing on stdout, no notes: errors and warnings only (--quiet)
  bool json = false;      // stdout holds one JSON document: nothing else goes there
  bool terminal = false;  // stdout is a terminal: long runs show one progress line
};

// Prints a run as it happens; the CLI's only view into the engine's runs is this Observer.
// Plan and steps go to `out`; the engine's notices to `err` as "note: ...".
//
// On a terminal, a run of more than kProgressAfter migrations prints one line updated in place
// ("[ 37/269] 20240312101500_add_index ... 1.2 s", rewritten with a carriage return and
// spaces, no escape sequences, no colour) instead of a line per migration; finish() ends it.
// Never in a pipe or a file, where every step keeps its own line.
class ConsoleObserver final : public Observer {
 public:
  static constexpr std::size_t kProgressAfter = 3;

  ConsoleObserver(std::ostream& out, std::ostream& err, ConsoleMode mode)
      : out_(out), err_(err), mode_(mode) {}

  void on_locked(std::chrono::nanoseconds waited) override;
  void on_plan(const Plan& plan) override;
  void on_step_started(const PlannedStep& step) override;
  void on_step_finished(const AppliedStep& step) override;
  void on_notice(const std::string& message) override;
  void on_backup(const std::string& path) override;  // --backup: "Backed up ... to PATH"

  // Ends the progress line, if one is showing, so that what follows starts on its own line.
  // Called before the run's summary or error is printed.
  void finish();

 private:
  // Rewrites the progress line with `text`.
  void show_progress(const std::string& text);
  std::string progress_label(Version version, const std::string& identifier) const;

  std::ostream& out_;
  std::ostream& err_;
  ConsoleMode mode_;
  bool progress_ = false;         // this run shows a progress line
  std::size_t total_ = 0;         // steps planned
  std::size_t started_ = 0;       // steps started so far
  std::size_t shown_length_ = 0;  // of the progress line on screen (0: none showing)
};

// --dry-run: the plan, each step's file, direction and transaction (and why not), and the
// statements as the driver would send them with their line numbers.
void print_dry_run(std::ostream& out, const DryRun& dry, const std::string& command,
                   const std::string& database);

// "error: MESSAGE", the failing statement, and (verbose) the error's code.
void print_error(std::ostream& err, const Error& e, bool verbose);

// `version`: "6", "6 (dirty)" or "none (no migration applied yet)".
void print_version(std::ostream& out, const DbState& state);

// `status`: a line naming the database and its version, a table with one row per migration
// (version, state, name, when it ran, how long, notes; `verbose` adds who ran it), and a summary.
void print_status(std::ostream& out, const StatusReport& report, const std::string& database,
                  bool verbose);

// `validate`: one line per problem, naming its file and what to do, then a count; or a line
// saying there is none.
void print_problems(std::ostream& out, const std::vector<ValidationProblem>& problems);

}  // namespace dbstep::cli
