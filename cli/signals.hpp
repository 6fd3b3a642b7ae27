#pragma once
// Stopping on SIGINT/SIGTERM. The first one raises the run's stop flag (MigratorOptions::stop): a
// wait for the lock ends at once, the running migration finishes, no other starts, and the
// command exits 128 + the signal. The second one has the library abort the running statement
// (Migrator::interrupt: PostgreSQL's cancel request, sqlite3_interrupt), so that the migration's
// transaction rolls back on the server instead of committing after we are gone, and ends the
// process at once with 128 + the signal: the one exit outside run()'s return, as the default
// action of the signal would be.

#include <signal.h>

#include <atomic>

#include "core/migrator.hpp"

namespace dbstep::cli {

// The flag every command's Migrator is given as MigratorOptions::stop.
const std::atomic<bool>* stop_flag();
// The exit code for a run the first signal stopped: 128 + the signal (SIGINT when none came).
int stopped_exit_code();

// Handles SIGINT and SIGTERM as above while it lives; the previous handlers come back after.
// One at a time, on the thread that runs `migrator`.
class SignalScope {
 public:
  explicit SignalScope(Migrator& migrator);
  ~SignalScope();
  SignalScope(const SignalScope&) = delete;
  SignalScope& operator=(const SignalScope&) = delete;

 private:
  struct sigaction old_int_ {};
  struct sigaction old_term_ {};
};

}  // namespace dbstep::cli
