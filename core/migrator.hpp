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
#include "core/status.hpp"

namespace dbstep {

namespace detail {
class StoredDownReader;  // core/stored_down_reader.hpp
}  // namespace detail

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
  // MigratorOptions::backup: the copy made before the run's first step (Driver::backup), if one
  // was made.
  std::optional<std::string> backup;
  std::optional<Error> error;      // the failure, if the run failed; steps before it stay applied
  bool ok() const { return !error.has_value(); }
};

// What a run would do (Migrator::dry_run_up() ...): the plan from the database's state as read,
// with each step's file and how the driver would run it (Driver::preview).
struct DryRunStep {
  PlannedStep planned;
  std::string file;  // empty when the version has no file that way (only the version moves)
  std::optional<StepPreview> preview;  // nullopt without a file or when the driver cannot tell
};
struct DryRun {
  DbState state;   // as read, before the run
  Plan plan;       // plan.to() is where the run would leave the database
  std::vector<DryRunStep> steps;  // plan.steps with their files, in order
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
  // MigratorOptions::backup: the database was copied to `path`, after the plan and before the
  // first step.
  virtual void on_backup(const std::string& /*path*/) {}
  // Something the person running the migration should know that is not an error: a rollback
  // that uses the down SQL stored in the history, a down file that differs from it, migrations
  // pending below the current version. Called on the Migrator's thread.
  virtual void on_notice(const std::string& /*message*/) {}
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
  // Append a history row per step (core/history.hpp). Off: dbstep writes only golang-migrate's
  // version table, as golang-migrate does.
  bool record_history = true;
  // Run even when applied migrations' files were edited since they ran (Error(kValidation)
  // otherwise, before anything runs).
  bool ignore_checksums = false;
  // Apply pending migrations below the current version (merged from another branch) before the
  // others; without it they are only reported (Observer::on_notice).
  bool out_of_order = false;
  // Before a run that has steps (none for nothing to do), copy the database under the run's
  // lock (Driver::backup: SQLite's online backup to <db>.backup-v<version>-<YYYYMMDD-HHMMSS>,
  // UTC); if the copy fails, the run fails with nothing applied. Drivers that cannot copy their
  // database (PostgreSQL: use pg_dump or a snapshot) refuse it when the Migrator is made.
  bool backup = false;
};

// A problem validate() found, naming the file and what to do.
struct ValidationProblem {
  Version version = 0;
  std::string file;     // the file it is about, or the identifier when the file is gone
  std::string message;  // complete: what is wrong and what to do
};

// What repair() did.
struct RepairResult {
  std::vector<Version> accepted;  // edited files whose new checksum was accepted
  bool cleared_dirty = false;
};

class Migrator {
 public:
  // Lists and indexes the source; throws Error for an unreadable source or duplicate files.
  Migrator(std::unique_ptr<Source> source, std::unique_ptr<Driver> driver,
           MigratorOptions options = {});
  // Opens both URLs through `registry` (a source may be a plain directory path). The source is
  // opened first, then the driver started (Registry::start_driver), and the source listed while
  // the driver connects.
  static Migrator open(const Registry& registry, std::string_view database_url,
                       std::string_view source_url, MigratorOptions options = {});

  Result up();                      // every pending migration
  Result down();                    // every applied migration, down to none
  Result steps(std::int64_t n);     // n > 0: the next n up; n < 0: the last -n down; 0: nothing
  Result migrate_to(Version v);     // up or down to exactly v
  // Rolls back the last applied migration and applies it again: two steps, each in its own
  // transaction, or both in one with single_transaction. With no migration applied the Result
  // carries Error(kInvalidArgument) and nothing is done.
  Result redo();

  // Dry runs: what up(), down(), steps(n), migrate_to(v) and redo() would do now, without doing
  // it. They only read: no lock, nothing written or created (not even the version table or a
  // SQLite file), so another process may still move the database before a real run. They throw
  // what a real run would fail with before its first step (a dirty database: kDirty; edited
  // applied files going up: kValidation; an unknown version; nothing to redo), and the driver's
  // error for a file its split refuses; with single_transaction, a step that cannot run in a
  // transaction (cannot_batch()). The Observer only gets notices.
  DryRun dry_run_up();
  DryRun dry_run_down();
  DryRun dry_run_steps(std::int64_t n);
  DryRun dry_run_to(Version v);
  DryRun dry_run_redo();

  // Sets the stored version without running SQL and clears the dirty flag (golang-migrate's
  // force; none empties the table), with a history row of kind forced. Takes the lock.
  void force(OptVersion v);

  // Every migration in the source or the history with its state (core/status.hpp). Read-only:
  // no lock, nothing created; works for a user who may only read.
  StatusReport status();
  // status() as problems: edited applied files, applied files that are gone (and cannot be
  // rolled back when no down SQL is stored), pending migrations below the current version, a
  // dirty version. Empty when all is well. Read-only.
  std::vector<ValidationProblem> validate();
  // Marks a database whose schema was made without dbstep as at version `v`: a history row of
  // kind baseline for every source version up to `v` (checksum and down SQL of its files), no SQL
  // run. Refuses (Error(kInvalidArgument)) when the database already has a version unless
  // `over_existing`, and when `v` is not a version of the source. Takes the lock.
  void baseline(Version v, bool over_existing = false);
  // Accepts the current files' checksums of edited applied migrations, with a history row of
  // kind repaired each (their down SQL is stored anew). A dirty flag is cleared only together
  // with a named version (`dirty_version`, as force does). Takes the lock.
  RepairResult repair(std::optional<OptVersion> dirty_version = std::nullopt);
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
  // The public constructor, and open(): lists and indexes the source, then takes the driver from
  // `driver` (which may finish connecting only now).
  Migrator(std::unique_ptr<Source> source, const PendingDriver& driver, MigratorOptions options);

  // `up`: a run that moves up (migrate, up N), which checks edited files and reports (or with
  // out_of_order applies) pending migrations below the current version.
  template <typename PlanFn>
  Result run(PlanFn&& make_plan, bool up = false);
  // The plans of up() / steps(n > 0), down() / steps(n < 0), migrate_to() and redo() from
  // version `from`, shared by the runs and the dry runs.
  Plan plan_up_from(OptVersion from, std::optional<std::uint64_t> limit);
  Plan plan_down_from(OptVersion from, std::optional<std::uint64_t> limit);
  Plan plan_to_from(OptVersion from, Version v);
  Plan plan_redo_from(OptVersion from);
  template <typename PlanFn>
  DryRun dry_run(PlanFn&& make_plan, bool up);
  // plan.steps[i] as the driver runs it: its file's SQL (or for a down step without a file, the
  // down SQL `downs` read from the history) and its history row.
  Step make_step(const Plan& plan, std::size_t i, detail::StoredDownReader& downs);
  // The history row for `step` (nullopt when history is off), and for a version's files
  // (baseline, repair).
  std::optional<HistoryRow> history_row(const Step& step);
  HistoryRow row_for_files(Version v, HistoryKind kind);
  // The checksum of the up file of `v` (which the index has), read from the source.
  std::string up_checksum(Version v);
  // Refuses a run going up when applied files were edited (unless ignore_checksums), reports
  // out-of-order pending migrations, and returns them when they are to be applied first.
  std::vector<PlannedStep> check_before_up(const DbState& current);
  // Source versions pending below `state`'s version, from the history's `marks`
  // (Driver::state_and_marks(); nullopt: no history table), and the notice for them.
  std::vector<Version> out_of_order(const DbState& state,
                                    std::optional<std::vector<HistoryMark>> marks);
  void report_out_of_order(const std::vector<Version>& versions);
  // The index for planning a move down from `state`: the source's, plus the versions known only
  // from the history whose down SQL is stored.
  // nullopt when the source's index will do.
  std::optional<MigrationIndex> down_index(const DbState& state);
  // status() for `state`, reading checksums only when `checksums`.
  StatusReport status_of(const DbState& state, bool checksums);
  // Runs plan.steps[from..] in one transaction; returns false when the state moved first.
  bool run_batch(const Plan& plan, DbState& current, Result& result);

  std::unique_ptr<Source> source_;
  std::unique_ptr<Driver> driver_;
  MigratorOptions options_;
  MigrationIndex index_;
  std::string source_name_;
  std::string applied_by_;  // user@host, looked up on first use
};

}  // namespace dbstep
