#pragma once
// Migrator: the engine's facade. It owns one Source and one Driver, indexes the source's files
// once when it is made, and moves the database up, down or to a version.
//
// Every run (up, down, steps, migrate_to) takes the driver's lock, reads the stored state,
// refuses a dirty database, plans with golang-migrate's semantics (core/plan.hpp), and applies the
// plan one migration at a time, each in its own transaction where the database allows it. Runs do
// not throw for failures of the run itself: the Result lists what was applied and carries the
// error, so a caller always knows where the database stands. Constructors and the other methods
// throw dbstep::Error.
//
// A Migrator is used from one thread at a time (interrupt() excepted). The Observer and the stop
// flag are borrowed and must outlive the Migrator. Several processes may run Migrators on one
// database at once: the driver's lock and apply()'s state check make each migration run exactly
// once.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/driver.hpp"
#include "core/error.hpp"
#include "core/migration.hpp"
#include "core/plan.hpp"
#include "core/registry.hpp"
#include "core/source.hpp"

namespace dbstep {

struct AppliedStep {
  Version version = 0;
  OptVersion target;
  Direction direction = Direction::kUp;
  std::string identifier;
  std::string file;   // empty when the version had no file that way (only the version moved)
  std::chrono::nanoseconds duration{0};
};

struct Result {
  std::vector<AppliedStep> steps;  // in the order they were applied
  OptVersion from;                 // the version before the run
  OptVersion to;                   // the version after the run (also after a failure)
  std::chrono::nanoseconds duration{0};
  std::uint64_t short_by = 0;      // a count was requested and this many were not available
  // A stop request (MigratorOptions::stop) arrived during the run: the running migration
  // finished and no other started (planned steps may remain, or none). A stop while waiting for
  // the lock also sets `error` (code kStopped): nothing was read or applied.
  bool stopped = false;
  bool concurrent = false;         // another process moved the database during the run
  std::optional<Error> error;      // the failure, if the run failed; steps before it stay applied
  bool ok() const { return !error.has_value(); }
};

// Events of a run, in order: lock acquired, plan (again if another process moved the database),
// then started/finished per step. Called on the Migrator's thread, while the run holds the lock;
// the one exception is an empty plan found by the unlocked up-to-date check, which is reported
// without taking the lock.
// on_plan() may throw a dbstep::Error to cancel the run before anything of the plan is applied
// (an application's last check or backup); the Result then carries that error. The other events
// must not throw.
class Observer {
 public:
  virtual ~Observer() = default;
  virtual void on_locked(std::chrono::nanoseconds /*waited*/) {}
  virtual void on_plan(const Plan& /*plan*/) {}
  virtual void on_step_started(const PlannedStep& /*step*/) {}
  virtual void on_step_finished(const AppliedStep& /*step*/) {}
};

struct MigratorOptions {
  std::chrono::milliseconds lock_timeout{15000};
  // Checked while waiting for the lock (the wait ends at once) and before each migration (the
  // running migration always finishes; interrupt() is the way to abort it). Borrowed.
  const std::atomic<bool>* stop = nullptr;
  Observer* observer = nullptr;  // borrowed
  // Apply the whole plan in one transaction: every migration and the version update commit
  // together or not at all (Driver::apply_batch). A stop request ends the batch after the
  // running migration and commits what ran.
  bool single_transaction = false;
};

class Migrator {
 public:
  // Lists and indexes the source; throws Error for an unreadable source or duplicate files.
  Migrator(std::unique_ptr<Source> source, std::unique_ptr<Driver> driver,
           MigratorOptions options = {});
  // Opens both URLs through `registry` (a source may be a plain directory path).
  static Migrator open(const Registry& registry, std::string_view database_url,
                       std::string_view source_url, MigratorOptions options = {});

  Result up();                      // every pending migration
  Result down();                    // every applied migration, down to none
  Result steps(std::int64_t n);     // n > 0: the next n up; n < 0: the last -n down; 0: nothing
  Result migrate_to(Version v);     // up or down to exactly v

  // Sets the stored version without running SQL and clears the dirty flag (golang-migrate's
  // force; none empties the table). Takes the lock.
  void force(OptVersion v);
  // Removes everything in the database (Driver::drop). Takes the lock.
  void drop();

  // Aborts the statement the run is executing now (Driver::interrupt): its migration fails and
  // rolls back. Async-signal-safe, and callable from another thread while a run is in progress;
  // best effort (a statement about to finish may still commit). Pair it with the stop flag so
  // that no further migration starts.
  void interrupt() noexcept { driver_->interrupt(); }

  DbState state();                  // no lock taken
  std::vector<PlannedStep> pending();   // what up() would apply now
  bool needs_migration();           // dirty, or not at the source's latest version

  const MigrationIndex& index() const { return index_; }
  Source& source() { return *source_; }
  Driver& driver() { return *driver_; }

 private:
  template <typename PlanFn>
  Result run(PlanFn&& make_plan);
  Step make_step(const PlannedStep& planned);
  // Runs plan.steps[from..] in one transaction; returns false when the state moved first.
  bool run_batch(const Plan& plan, DbState& current, Result& result);

  std::unique_ptr<Source> source_;
  std::unique_ptr<Driver> driver_;
  MigratorOptions options_;
  MigrationIndex index_;
  std::string source_name_;
};

}  // namespace dbstep
