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

// Prints a run as it happens; the CLI's only view into the engine's runs is this Observer.
// Plan and steps go to `out`; the engine's notices to `err` as "note: ...".
class ConsoleObserver final : public Observer {
 public:
  ConsoleObserver(std::ostream& out, std::ostream& err, bool verbose)
      : out_(out), err_(err), verbose_(verbose) {}

  void on_locked(std::chrono::nanoseconds waited) override;
  void on_plan(const Plan& plan) override;
  void on_step_started(const PlannedStep& step) override;
  void on_step_finished(const AppliedStep& step) override;
  void on_notice(const std::string& message) override;

 private:
  std::ostream& out_;
  std::ostream& err_;
  bool verbose_;
};

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
