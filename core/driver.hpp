#pragma once
// Driver: one open connection to one database, and everything dbstep stores in it.
//
// The Migrator owns its Driver (std::unique_ptr from a Registry factory) and calls it from one
// thread; the one exception is interrupt(), which may come from a signal handler or another
// thread while the Migrator's thread is inside the driver. A Driver keeps golang-migrate's
// version table (one row: version, dirty), so databases move between golang-migrate and dbstep
// in both directions. Every method throws dbstep::Error, translated from the back end's
// exceptions with the context a user needs; the destructor closes the connection, releases a
// held lock and never throws.
//
// The contract that keeps databases whole is apply(): a migration's SQL and the new version
// commit together in one transaction, and apply() refuses to run when the stored state is not the
// one the Migrator planned from, so two processes never apply the same migration twice.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/history.hpp"
#include "core/migration.hpp"
#include "core/version.hpp"

namespace dbstep {

// What the version table says: the version (none when the table is missing or empty) and
// whether a migration that ran outside a transaction failed part way (dirty).
struct DbState {
  OptVersion version;
  bool dirty = false;
  friend bool operator==(const DbState&, const DbState&) = default;
};

// One move of the database: run the `direction` file of migration `version` (if it has one) and
// record `target` as the new version. Going up, target == version; going down, target is the
// previous version (or none). golang-migrate's Migration{Version, TargetVersion, Body}.
struct Step {
  Version version = 0;
  OptVersion target;
  Direction direction = Direction::kUp;
  std::string identifier;  // "create_users"
  std::string file;        // "1_create_users.up.sql"; empty when there is no file that way
  std::string sql;         // the file's bytes, as read; empty when there is no file
  // The history row to append with the step (core/history.hpp), in the step's own transaction:
  // the driver sets its duration (from the step's start to the append) and may take applied_at
  // from the database's clock. None: the step leaves no history row.
  std::optional<HistoryRow> history;
  bool has_file() const { return !file.empty(); }
};

// Hands out the steps of a batch one at a time: nullptr when there are no more (or the run was
// asked to stop). The Step stays valid until the next call.
using StepFeed = std::function<const Step*()>;

// The error apply_batch() throws for a step that cannot run inside a transaction; `why` says
// what in the file prevents it.
class Error;
Error cannot_batch(const Step& step, std::string_view why);

// A step as the driver would run it, without running it (--dry-run): the statements it would
// send, in order, and whether they would run inside dbstep's transaction.
struct StatementPreview {
  std::uint32_t line = 1;    // of the statement's first character (after leading comments)
  std::uint32_t column = 1;
  std::string text;          // as sent, without the blank text around it
};
struct StepPreview {
  bool in_transaction = true;
  // When !in_transaction, why: "it says -- dbstep:no-transaction", "it holds CREATE INDEX
  // CONCURRENTLY", "x-no-tx-wrap is set" ... Otherwise empty.
  std::string why_outside;
  // Other things worth knowing about how it runs ("the file's own BEGIN and COMMIT are replaced
  // by dbstep's transaction", "foreign keys switched off around it").
  std::vector<std::string> notes;
  std::vector<StatementPreview> statements;
};

// A message from the database that is not an error (Driver::set_notice_handler).
struct DatabaseNotice {
  std::string severity;  // as the database says it: "NOTICE", "WARNING", "INFO" ...
  std::string message;
  std::string file;      // the migration file that was running ("3_add.up.sql"), or empty
};

class Driver {
 public:
  virtual ~Driver() = default;

  // Excludes other dbstep and golang-migrate processes from this database for one run. Called
  // once by the Migrator before it reads the state; unlock() is called once at the end, also on
  // failure. Waits at most `timeout`, then throws Error(kLockTimeout) saying who holds the lock
  // where the database can tell. While it waits it looks at `stop` (borrowed, may be null: the
  // Migrator's stop flag) between attempts and every 50 ms of its pauses, and once it is true
  // gives up and throws Error(kStopped) saying what it waited for; the lock is then not held and
  // nothing was done. A second lock() without unlock() throws Error(kLocked).
  virtual void lock(std::chrono::milliseconds timeout, const std::atomic<bool>* stop) = 0;
  // lock() with no stop flag: only the timeout ends the wait.
  void lock(std::chrono::milliseconds timeout) { lock(timeout, nullptr); }
  // Releases the lock taken by lock(). Throws Error(kLocked) when not locked.
  virtual void unlock() = 0;

  // The stored state. A missing version table is {none, clean}; reading never creates it.
  virtual DbState state() = 0;

  // Runs step.sql and records {step.target, clean}, provided the stored state is still
  // `expected`; returns false (and changes nothing) when another process changed it first.
  // Where the SQL can run in a transaction, SQL and version update commit together: on failure
  // nothing of the step remains and the state stays `expected`. A migration that cannot run in a
  // transaction (it says `-- dbstep:no-transaction`, or holds statements the database refuses in
  // one) runs under golang-migrate's dirty protocol: {target, dirty}, the SQL, {target, clean}; a
  // failure then leaves {target, dirty}. A step without a file only records the version. Throws
  // Error(kMigrationFailed) with file, line, column and the database's message on a SQL error.
  // The version table is created on first use.
  virtual bool apply(const Step& step, const DbState& expected) = 0;

  // --single-transaction: runs every step `next` hands out, then records the last step's target,
  // all in ONE transaction, provided the stored state is still `expected` (false, and nothing
  // done, when it is not). Any failure rolls back everything: the state stays `expected`. A step
  // that cannot run in a transaction fails the batch with Error(kMigrationFailed) saying so.
  // Drivers whose database cannot roll back DDL keep this default, which refuses the batch.
  virtual bool apply_batch(const DbState& expected, const StepFeed& next);

  // Stores `state` as is, without running SQL (`force`). {none, clean} leaves the table empty.
  virtual void set_state(const DbState& state) = 0;

  // History (core/history.hpp). apply() and apply_batch() append each step's Step::history row
  // in the step's transaction; on the dirty protocol's path the row goes with the final "clean"
  // write, and a failure that leaves the database dirty appends a copy of the row with kind
  // kFailed. The history table is created on the first write that appends to it, under the lock,
  // never by a read.
  //
  // The rows in the order they were written, without their down SQL (HistoryRow::down_stored
  // says whether there is one); nullopt when the database has no history table. Read-only.
  // Throws Error(kDatabase) naming the table for a table of another shape or a malformed row.
  // Drivers without history keep the default: nullopt.
  virtual std::optional<std::vector<HistoryRow>> history() { return std::nullopt; }
  // history() reduced to each row's id, version, direction and kind, with the same errors, in
  // any order (each mark has its id): what every run going up reads to find migrations pending
  // below the current version, so drivers read just those columns. The default takes them from
  // history().
  virtual std::optional<std::vector<HistoryMark>> history_marks();
  // state() and, when it has a version, history_marks(): what a run going up reads first to
  // tell whether anything is pending, above the current version or below it. Read-only. The
  // state's errors are thrown; the marks' are kept in marks_error, for the caller to throw only
  // if it uses them (a dirty database is reported as dirty, whatever its history). The default
  // calls one after the other; a driver that can read both in one round trip does (most runs
  // find nothing to do, and pay only this).
  struct StateAndMarks {
    DbState state;
    std::optional<std::vector<HistoryMark>> marks;  // nullopt: no version, no history table, or
                                                    // marks_error
    std::exception_ptr marks_error;                 // what history_marks() would have thrown
  };
  virtual StateAndMarks state_and_marks();
  // The down SQL stored by the latest up row (applied, baseline or repaired) of each of
  // `versions`, read at once (a rollback of many migrations asks once per window of steps, not
  // once per step): the versions that have one, mapped to it; versions without are absent.
  // Read-only. Drivers without history keep the default: nothing stored.
  virtual std::map<Version, std::string> stored_downs(const std::vector<Version>& /*versions*/) {
    return {};
  }
  // stored_downs() of one version, or nullopt.
  std::optional<std::string> stored_down(Version version);
  // set_state() and the `rows` appended, in one transaction (force, baseline, repair). The
  // default, for drivers without history, only sets the state.
  virtual void record_state(const DbState& state, const std::vector<HistoryRow>& /*rows*/) {
    set_state(state);
  }

  // Removes everything in the database (schema) that dbstep can reach: tables, views, indexes,
  // triggers, and for servers sequences, types, functions. The version table goes too and is
  // recreated on next use.
  virtual void drop() = 0;

  // How the database is named in messages, with any password hidden.
  virtual std::string describe() const = 0;

  // Backup before a run (MigratorOptions::backup). check_backup() returns when backup() can copy
  // this database and otherwise throws Error(kInvalidArgument) saying what to use instead; the
  // Migrator calls it when it is made with the option. backup() copies the whole database,
  // consistently, to a new file `<db>.backup-v<version>-<YYYYMMDD-HHMMSS>` (`state`'s version,
  // UTC time) and returns its path, or nullopt when there is nothing to copy (no database yet,
  // or one with no schema at all). The Migrator calls it at most once per run, holding the lock,
  // after planning a run that has steps and before the first one. It never overwrites a file:
  // one of that name is an error. It throws Error(kDatabase) naming the file and the reason
  // (unwritable folder, full disk) when the copy cannot be made, and leaves no partial copy.
  // Drivers that cannot copy their database keep the defaults, which refuse (naming pg_dump and
  // snapshots, a server's tools).
  virtual void check_backup() const;
  virtual std::optional<std::string> backup(const DbState& state);

  // --dry-run: how apply() would run `step` (a step with a file), split by the same code that
  // splits it for apply(). The Migrator calls it for each step of a plan in order, and a driver
  // may assume the steps before it ran (SQLite can only prepare a statement once the ones before
  // it have run, so its driver runs them on a scratch in-memory copy of the schema). Changes
  // nothing in the database and creates nothing: no lock, no version or history table, no
  // database file. Throws Error(kMigrationFailed) with file, line and column for text the split
  // refuses (as apply() would). Drivers that cannot tell keep this default: nullopt.
  virtual std::optional<StepPreview> preview(const Step& /*step*/) { return std::nullopt; }

  // Asks the database to abort the statement running now on this driver's connection, so that
  // the migration apply() is running fails and its transaction rolls back (one that runs outside
  // a transaction stays dirty). Async-signal-safe: a signal handler may call it (the CLI's
  // second Ctrl-C does, right before the process exits), as may another thread while apply()
  // runs. Best effort: it may arrive too late (the statement finished, or the COMMIT was
  // already running) and then changes nothing; it never throws and never waits long. Drivers
  // whose database offers no such request keep this default, which does nothing.
  virtual void interrupt() noexcept {}

  // Messages the database sends that are not errors (PostgreSQL's RAISE NOTICE / WARNING, a
  // DROP ... IF EXISTS that found nothing): from now on each goes to `handler`, on the thread
  // that called into the driver, with the migration file running when it came. Without a
  // handler they are dropped. Drivers whose database sends none keep this default.
  virtual void set_notice_handler(std::function<void(const DatabaseNotice&)> /*handler*/) {}

  // Schema snapshots and scratch databases (core/schema_snapshot.hpp, core/verify.hpp).
  //
  // Everything in the database (for servers: the current schema) that a migration can change,
  // as a deterministic text: one object after another, sorted by kind and name, each object's
  // parts (columns in their table order, then constraints, indexes, triggers ... by name) on
  // lines of their own. Two databases with the same schema give the same text, whatever order
  // it was built in; nothing that depends on creation order (OIDs, rowids, dropped columns) or
  // on data appears. dbstep's own tables (version, history, lock) are left out. Read-only: no
  // lock, nothing created; a database that does not exist yet gives an empty schema. Drivers
  // that cannot describe their schema keep this default, which throws Error(kInvalidArgument).
  virtual std::string schema_snapshot();
  // Creates an empty database named `name` (letters, digits, '_') for a throwaway run beside
  // this one (on the same server; for SQLite a file in the system's temporary folder) and
  // returns its URL, with this driver's x- parameters. Touches this database only to create
  // the other one. Throws Error(kDatabase) saying which right is missing when it may not.
  // Default: Error(kInvalidArgument), not supported.
  virtual std::string create_scratch_database(const std::string& name);
  // Removes the database create_scratch_database(name) made (no other), with everything in
  // it; nothing when it is gone. Throws Error(kDatabase) when it cannot.
  virtual void drop_scratch_database(const std::string& name);
};

// For drivers' lock waits: sleeps for `pause`, in slices short enough to notice `stop` (which
// may be null) within 50 ms. Returns true when the sleep ended because *stop became true.
bool sleep_unless_stopped(std::chrono::milliseconds pause, const std::atomic<bool>* stop);

}  // namespace dbstep
