// The SQLite driver: ties the connection's settings (connection_options.hpp), the statement walk
// (statements.hpp), golang-migrate's version table (version_table.hpp), the history table
// (history_table.hpp), the run lock (lock_file.hpp), the backup (backup.hpp), drop (drop.hpp),
// the dry run (preview.hpp) and the schema snapshot (schema_snapshot.hpp) into a dbstep::Driver.
//
// Every write is one BEGIN IMMEDIATE transaction that checks the stored state first (another
// process may have moved it). A migration runs inside it unless it cannot (it controls
// transactions itself, holds VACUUM, says dbstep:no-transaction, or x-no-tx-wrap is set): then
// golang-migrate's dirty protocol applies, {target, dirty}, the file as written, {target, clean}.
// The database file is created by the first write, never by a read or a failed first migration.

#include "drivers/sqlite/sqlite_driver.hpp"

#include <sqlite3.h>

#include <SQLiteCpp/SQLiteCpp.h>
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <optional>
#include <string>
#include <string_view>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/error.hpp"
#include "core/sql_text.hpp"
#include "core/statement_accounting.hpp"
#include "drivers/sqlite/backup.hpp"
#include "drivers/sqlite/connection_options.hpp"
#include "drivers/sqlite/driver_sql.hpp"
#include "drivers/sqlite/drop.hpp"
#include "drivers/sqlite/history_table.hpp"
#include "drivers/sqlite/lock_file.hpp"
#include "drivers/sqlite/preview.hpp"
#include "drivers/sqlite/schema_snapshot.hpp"
#include "drivers/sqlite/statements.hpp"
#include "drivers/sqlite/table_name.hpp"
#include "drivers/sqlite/version_table.hpp"

namespace dbstep::drivers {

namespace {

// Thrown inside a wrapped run when the file turns out to control transactions itself (BEGIN,
// COMMIT ... other than one plain wrapper) or to hold a statement SQLite refuses in a transaction
// (VACUUM). The wrapper rolls back (nothing of the file has happened) and the file runs again
// without it.
struct NeedsNoTransaction {};

// Thrown inside a wrapped run, foreign keys on, at a `PRAGMA foreign_keys = ...`: SQLite ignores
// it inside a transaction, so the table-rebuild recipe (keys off, DROP and rename the parent,
// keys on) would cascade-delete child rows. The wrapper rolls back and the file runs again in
// one transaction with the keys switched off around it and checked before COMMIT.
struct NeedsForeignKeysOff {};

// x-history-table, or by default a sibling of the version table named after it.
sqlite::HistoryTable history_table_of(const sqlite::ConnectionOptions& o) {
  const sqlite::TableName version_table = sqlite::parse_table_name(o.version_table);
  const sqlite::TableName history_table =
      o.history_table.empty() ? version_table.sibling(default_history_table(version_table.table))
                              : sqlite::parse_table_name(o.history_table);
  return sqlite::HistoryTable(history_table.table, history_table.schema);
}

enum class Wrap {
  kNone,         // the file runs as written, outside any transaction of ours
  kTransaction,  // inside our transaction
  kForeignKeysOff,  // inside our transaction, foreign keys off around it
};

class SqliteDriver final : public Driver {
 public:
  explicit SqliteDriver(const Url& url) : SqliteDriver(sqlite::parse_connection_options(url)) {}
  ~SqliteDriver() override {
    interruptible_.store(nullptr);
    finalize_statements();
    lock_file_.release();
  }

  using Driver::lock;
  void lock(std::chrono::milliseconds timeout, const std::atomic<bool>* stop) override;
  void unlock() override;
  DbState state() override;
  bool apply(const Step& step, const DbState& expected) override {
    return keeping_no_empty_file([&] { return apply_step(step, expected); });
  }
  bool apply_batch(const DbState& expected, const StepFeed& next) override {
    return keeping_no_empty_file([&] { return apply_steps(expected, next); });
  }
  void set_state(const DbState& state) override;
  std::optional<std::vector<HistoryRow>> history() override;
  std::optional<std::vector<HistoryMark>> history_marks() override;
  std::map<Version, std::string> stored_downs(const std::vector<Version>& versions) override;
  void record_state(const DbState& state, const std::vector<HistoryRow>& rows) override;
  void drop() override;
  std::string describe() const override { return description_; }
  void check_backup() const override {
    if (path_ == ":memory:") {
      throw Error(ErrorCode::kInvalidArgument,
                  "--backup needs a database file: an in-memory SQLite database has none");
    }
  }
  std::optional<std::string> backup(const DbState& state) override;
  std::string schema_snapshot() override {
    if (!open_connection(false)) return "dialect sqlite\n";  // no file yet: an empty schema
    return sqlite::schema_snapshot(*db_, {version_.name(), history_.name()});
  }
  std::string create_scratch_database(const std::string& name) override {
    return sqlite::scratch_url(name, scratch_params_);
  }
  void drop_scratch_database(const std::string& name) override { sqlite::remove_scratch(name); }
  std::optional<StepPreview> preview(const Step& step) override {
    // Opens the database only if it exists: a dry run never creates the file.
    if (!preview_run_) {
      preview_run_ = std::make_unique<sqlite::PreviewRun>(
          open_connection(false) ? handle() : nullptr, pragmas_, no_tx_wrap_);
    }
    return preview_run_->preview(step);
  }
  void interrupt() noexcept override {
    // sqlite3_interrupt() only sets a flag the running statement polls (SQLite documents it as
    // safe from another thread); the statement then fails with SQLITE_INTERRUPT and run_file()
    // reports it like any other failure, so the migration's transaction rolls back.
    if (sqlite3* db = interruptible_.load()) sqlite3_interrupt(db);
  }

 private:
  explicit SqliteDriver(sqlite::ConnectionOptions o);
  sqlite3* handle() const { return db_->getHandle(); }
  // The driver's own SQL on its connection (driver_sql.hpp), its errors naming the database.
  void exec(const std::string& sql, std::string_view what) {
    sqlite::exec(handle(), sql, what, description_);
  }
  void begin_immediate() { sqlite::begin_immediate(handle(), description_, busy_ms_); }
  void rollback_quietly() noexcept { sqlite::rollback_quietly(handle()); }
  // BEGIN IMMEDIATE, the version table, and the state check every write starts with: false
  // (and no transaction left open) when the stored state is not `expected`.
  bool begin_checked(const DbState& expected);
  // After a rollback: it may have undone the version and history tables' creation.
  void forget_tables() noexcept {
    version_.forget();
    history_ready_ = false;
  }
  bool apply_step(const Step& step, const DbState& expected);
  bool apply_steps(const DbState& expected, const StepFeed& next);
  // Runs `write`, which opens (and so creates) the database file. When the file did not exist
  // before and `write` fails, the empty file SQLite made is removed again: a failed first
  // migration leaves no 0-byte database behind (nothing can have been committed to it).
  template <typename Write>
  bool keeping_no_empty_file(Write&& write) {
    std::error_code ec;
    const bool new_file = !memory_ && !db_ && !std::filesystem::exists(path_, ec);
    try {
      return write();
    } catch (...) {
      if (new_file) remove_if_empty();
      throw;
    }
  }
  void remove_if_empty() noexcept;
  // Appends `step`'s history row (if any) in the open transaction, `kind` overriding its own.
  void append_history(const Step& step, std::chrono::steady_clock::time_point started,
                      std::optional<HistoryKind> kind = std::nullopt);
  // Walks `sql` statement by statement with sqlite3_prepare_v2 and its tail, stepping each.
  // Inside our transaction (`wrap` != kNone), a file wrapped in one plain BEGIN ... COMMIT has
  // the wrapper skipped; other transaction control or VACUUM throws NeedsNoTransaction, and
  // `PRAGMA foreign_keys` with keys on throws NeedsForeignKeysOff, before anything runs.
  // Throws Error(kMigrationFailed) locating the failing statement.
  void run_file(const Step& step, Wrap wrap);
  // After a failed run outside a transaction that left nothing behind: takes the dirty mark
  // back (`state` is the one before it). Best effort: on failure the database stays dirty.
  void restore_state_quietly(const DbState& state) noexcept;
  // PRAGMA foreign_key_check after a run with keys off: a violation fails the migration.
  void check_foreign_keys(const Step& step);
  // Opens the connection if the file exists (or `create`); returns whether it is open. Until
  // something is written, a database file that does not exist is not created, so `version`, a
  // failed run or a bad source never leaves an empty file behind.
  bool open_connection(bool create);
  void finalize_statements() noexcept {
    version_.finalize();
    history_.finalize();
  }

  std::string path_;
  std::string description_;  // describe()'s "SQLite database <path>", for messages
  std::string filename_;
  int flags_ = 0;
  bool memory_ = false;
  std::vector<std::string> pragmas_;
  int busy_ms_ = 15000;
  bool busy_from_url_ = false;  // _busy_timeout in the URL wins over the lock timeout
  bool no_tx_wrap_ = false;
  bool locked_ = false;
  bool file_committed_ = false;  // run_file() outside a transaction: a statement was committed
  bool history_ready_ = false;   // the history table is known to exist
  std::unique_ptr<SQLite::Database> db_;
  // db_'s handle while it is open, for interrupt() from another thread or a signal handler.
  std::atomic<sqlite3*> interruptible_{nullptr};
  // Declared after db_, so that their statements are finalized before it closes even without
  // the destructor.
  sqlite::VersionTable version_;
  sqlite::HistoryTable history_;
  sqlite::LockFile lock_file_;
  // The x- and go-sqlite3 `_` parameters, for a scratch database that behaves like this one.
  std::vector<std::pair<std::string, std::string>> scratch_params_;
  std::unique_ptr<sqlite::PreviewRun> preview_run_;  // the dry run's scratch copy, when asked
};

// x-migrations-table=main.mig is table mig in schema main, as SQLite reads golang-migrate's
// unquoted `main.mig`; the history table goes in the same schema.
SqliteDriver::SqliteDriver(sqlite::ConnectionOptions o)
    : path_(std::move(o.path)),
      description_(fmt::format("SQLite database {}", path_)),
      filename_(std::move(o.filename)),
      flags_(o.flags),
      memory_(o.memory),
      pragmas_(std::move(o.pragmas)),
      busy_ms_(o.busy_ms),
      busy_from_url_(o.busy_from_url),
      no_tx_wrap_(o.no_tx_wrap),
      version_(sqlite::parse_table_name(o.version_table), description_),
      history_(history_table_of(o)),
      lock_file_(path_, description_),
      scratch_params_(std::move(o.scratch_params)) {
  std::error_code ec;
  if (!memory_ && !std::filesystem::exists(path_, ec)) {
    auto parent = std::filesystem::path(path_).parent_path();
    if (!parent.empty() && !std::filesystem::is_directory(parent, ec)) {
      throw Error(ErrorCode::kDatabase,
                  fmt::format("cannot open SQLite database {}: folder {} does not exist", path_,
                              parent.string()));
    }
    return;  // created on first write
  }
  open_connection(true);
}

bool SqliteDriver::open_connection(bool create) {
  if (db_) return true;
  std::error_code ec;
  if (!create && !memory_ && !std::filesystem::exists(path_, ec)) return false;
  try {
    db_ = std::make_unique<SQLite::Database>(filename_, flags_);
    db_->setBusyTimeout(busy_ms_);
    for (const auto& p : pragmas_) db_->exec(p);
    interruptible_.store(db_->getHandle());
  } catch (const SQLite::Exception& e) {
    finalize_statements();
    db_.reset();
    throw Error(ErrorCode::kDatabase,
                fmt::format("cannot open SQLite database {}: {}", path_, e.what()));
  }
  return true;
}

bool SqliteDriver::begin_checked(const DbState& expected) {
  begin_immediate();
  try {
    version_.ensure(handle());
    const DbState seen = version_.read(handle());
    // Another connection dropped the table since this one made it: make it again.
    version_.ensure(handle());
    if (seen == expected) return true;
  } catch (...) {
    rollback_quietly();
    forget_tables();
    throw;
  }
  rollback_quietly();
  return false;
}

void SqliteDriver::lock(std::chrono::milliseconds timeout, const std::atomic<bool>* stop) {
  // SQLite has no lock that outlives a transaction: the run's lock is <db>.dbstep-lock
  // (lock_file.hpp), and the lock timeout becomes the busy timeout that BEGIN IMMEDIATE waits.
  if (locked_) {
    throw Error(ErrorCode::kLocked, fmt::format("{} is already locked by this process", describe()));
  }
  if (!busy_from_url_) {
    busy_ms_ = static_cast<int>(std::min<std::int64_t>(timeout.count(), std::numeric_limits<int>::max()));
    if (db_) sqlite3_busy_timeout(handle(), busy_ms_);
  }
  if (!memory_) lock_file_.acquire(timeout, stop);
  locked_ = true;
}

void SqliteDriver::unlock() {
  if (!locked_) {
    throw Error(ErrorCode::kLocked, "can't unlock, as not currently locked");
  }
  lock_file_.release();
  locked_ = false;
}

DbState SqliteDriver::state() {
  if (!open_connection(false)) return DbState{};
  return version_.read(handle());
}

void SqliteDriver::run_file(const Step& step, Wrap wrap) {
  sqlite::StatementWalk walk(handle(), step);
  bool ran_any = false;
  bool wrapper_open = false;  // the file's own plain BEGIN was skipped; its COMMIT must end it
  TextSpan wrapper_begin;
  file_committed_ = false;
  while (auto prepared = walk.next()) {
    const TextSpan span = prepared->span;
    sqlite3_stmt* stmt = prepared->stmt.get();
    if (wrap != Wrap::kNone) {
      const std::string_view statement = std::string_view(step.sql).substr(span.offset, span.length);
      switch (sqlite::transaction_role(statement, ran_any, wrapper_open, walk.is_last(span))) {
        case sqlite::TxRole::kWrapperBegin:
          wrapper_open = true;
          wrapper_begin = span;
          continue;
        case sqlite::TxRole::kWrapperCommit:
          wrapper_open = false;
          continue;
        case sqlite::TxRole::kNeedsNoTransaction:
          throw NeedsNoTransaction{};
        case sqlite::TxRole::kForeignKeysPragma:
          if (wrap == Wrap::kTransaction && sqlite::foreign_keys_on(handle())) {
            throw NeedsForeignKeysOff{};
          }
          break;
        case sqlite::TxRole::kRun:
          break;
      }
    }
    ran_any = true;
    int rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    }
    if (rc != SQLITE_DONE) throw walk.statement_error(span);
    // Outside our transaction, a statement that ends with no transaction open has been
    // committed (its own, or the file's COMMIT): from then on the file has left a mark.
    if (wrap == Wrap::kNone && sqlite3_get_autocommit(handle())) file_committed_ = true;
  }
  if (wrapper_open) {
    // The file's BEGIN (skipped: our transaction stood in for it) never ended. Committing for
    // the file would be a guess; everything it did is in our transaction, which the caller
    // rolls back, so nothing of it remains and the version stays where it was, clean.
    throw begin_without_commit_error(step, wrapper_begin.offset, SqlDialect::kSqlite);
  }
}

void SqliteDriver::restore_state_quietly(const DbState& state) noexcept {
  try {
    begin_immediate();
    version_.write(handle(), state);
    exec("COMMIT", "cannot take back the dirty mark");
  } catch (...) {
    rollback_quietly();
  }
}

void SqliteDriver::check_foreign_keys(const Step& step) {
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(handle(), "PRAGMA foreign_key_check", -1, &stmt, nullptr) != SQLITE_OK) {
    throw sqlite::database_error(handle(), "cannot check foreign keys", description_);
  }
  std::vector<std::string> problems;
  while (sqlite3_step(stmt) == SQLITE_ROW && problems.size() < 5) {
    auto text = [&](int i) {
      auto t = sqlite3_column_text(stmt, i);
      return std::string(t ? reinterpret_cast<const char*>(t) : "?");
    };
    problems.push_back(fmt::format("{} row {} references missing {}", text(0), text(1), text(2)));
  }
  sqlite3_finalize(stmt);
  if (problems.empty()) return;
  Error e(ErrorCode::kMigrationFailed,
          fmt::format("migration {} ({}) ran with foreign keys off (it sets PRAGMA foreign_keys) "
                      "and leaves rows that break them: {}",
                      step.version, step.file, fmt::join(problems, "; ")));
  e.file = step.file;
  e.version = step.version;
  throw e;
}

void SqliteDriver::append_history(const Step& step, std::chrono::steady_clock::time_point started,
                                  std::optional<HistoryKind> kind) {
  if (!step.history) return;
  if (!history_ready_) {
    history_.ensure(handle());
    history_ready_ = true;
  }
  if (!kind) {
    history_.append(handle(), *step.history, started);
    return;
  }
  HistoryRow row = *step.history;
  row.kind = *kind;
  history_.append(handle(), row, started);
}

std::optional<std::string> SqliteDriver::backup(const DbState& state) {
  check_backup();
  if (!open_connection(false)) return std::nullopt;  // no file yet: nothing to lose
  return sqlite::back_up(*db_, path_, description_, state, busy_ms_);
}

void SqliteDriver::remove_if_empty() noexcept {
  std::error_code ec;
  if (!db_ || std::filesystem::file_size(path_, ec) != 0 || ec) return;
  interruptible_.store(nullptr);
  finalize_statements();
  db_.reset();
  forget_tables();
  std::filesystem::remove(path_, ec);
  std::filesystem::remove(path_ + "-journal", ec);
}

bool SqliteDriver::apply_step(const Step& step, const DbState& expected) {
  open_connection(true);
  const auto started = std::chrono::steady_clock::now();
  const DbState done{step.target, false};
  Wrap wrap = no_tx_wrap_ || has_directive(step.sql, "dbstep:no-transaction") ? Wrap::kNone
                                                                               : Wrap::kTransaction;
  while (wrap != Wrap::kNone || !step.has_file()) {
    // Foreign keys can only be switched outside a transaction; they come back on below.
    const bool keys_off = wrap == Wrap::kForeignKeysOff;
    if (keys_off) exec("PRAGMA foreign_keys = OFF", "cannot switch foreign keys off");
    struct KeysBackOn {
      SqliteDriver* d;
      bool on;
      ~KeysBackOn() {
        if (on) sqlite3_exec(d->handle(), "PRAGMA foreign_keys = ON", nullptr, nullptr, nullptr);
      }
    } keys_back_on{this, keys_off};
    if (!begin_checked(expected)) return false;
    try {
      if (step.has_file()) run_file(step, wrap);
      if (keys_off) check_foreign_keys(step);
      append_history(step, started);
      version_.write(handle(), done);
      exec("COMMIT", "cannot commit migration " + std::to_string(step.version));
      return true;
    } catch (const NeedsNoTransaction&) {
      rollback_quietly();
      forget_tables();  // the rollback may have undone their creation
      wrap = Wrap::kNone;
    } catch (const NeedsForeignKeysOff&) {
      rollback_quietly();
      forget_tables();
      wrap = Wrap::kForeignKeysOff;
    } catch (...) {
      rollback_quietly();
      forget_tables();
      throw;
    }
  }

  // golang-migrate's dirty protocol: {target, dirty}, the file as written, {target, clean}.
  if (!begin_checked(expected)) return false;
  try {
    version_.write(handle(), DbState{step.target, true});
    exec("COMMIT", "cannot mark the database dirty");
  } catch (...) {
    rollback_quietly();
    version_.forget();
    throw;
  }
  try {
    run_file(step, Wrap::kNone);
    if (!sqlite3_get_autocommit(handle())) {
      // The file began a transaction and never ended it: committing it for the file would be a
      // guess, so it is rolled back.
      Error e(ErrorCode::kMigrationFailed,
              fmt::format("migration {} ({}) began a transaction and did not commit it; its open "
                          "transaction was rolled back. Add COMMIT at the end of the file",
                          step.version, step.file));
      e.file = step.file;
      e.version = step.version;
      throw e;
    }
  } catch (...) {
    rollback_quietly();  // a transaction the file opened and did not finish
    // When no statement of the file was committed, the rollback took everything back: the
    // database is as it was, so the dirty mark is taken back too. Otherwise it stays dirty for
    // a person to look at, and the history says the step failed part way.
    if (!file_committed_) {
      restore_state_quietly(expected);
    } else if (step.history) {
      try {
        begin_immediate();
        append_history(step, started, HistoryKind::kFailed);
        exec("COMMIT", "cannot record the failure in the history");
      } catch (...) {
        rollback_quietly();  // the migration's error matters more
        history_ready_ = false;
      }
    }
    throw;
  }
  begin_immediate();
  try {
    append_history(step, started);
    version_.write(handle(), done);
    exec("COMMIT", "cannot mark the database clean");
  } catch (...) {
    rollback_quietly();
    history_ready_ = false;
    throw;
  }
  return true;
}

bool SqliteDriver::apply_steps(const DbState& expected, const StepFeed& next) {
  open_connection(true);
  if (!begin_checked(expected)) return false;
  try {
    std::optional<DbState> last;
    while (const Step* step = next()) {
      const auto started = std::chrono::steady_clock::now();
      if (step->has_file()) {
        if (no_tx_wrap_) throw cannot_batch(*step, "x-no-tx-wrap is set");
        if (has_directive(step->sql, "dbstep:no-transaction")) {
          throw cannot_batch(*step, "it says -- dbstep:no-transaction");
        }
        try {
          run_file(*step, Wrap::kTransaction);
        } catch (const NeedsNoTransaction&) {
          throw cannot_batch(*step, "it holds BEGIN, COMMIT, ROLLBACK or VACUUM");
        } catch (const NeedsForeignKeysOff&) {
          throw cannot_batch(*step, "it switches foreign keys off, which SQLite only allows "
                                    "outside a transaction");
        }
      }
      append_history(*step, started);
      last = DbState{step->target, false};
    }
    if (last) version_.write(handle(), *last);
    exec("COMMIT", "cannot commit the migrations");
    return true;
  } catch (...) {
    rollback_quietly();
    forget_tables();
    throw;
  }
}

void SqliteDriver::set_state(const DbState& state) { record_state(state, {}); }

void SqliteDriver::record_state(const DbState& state, const std::vector<HistoryRow>& rows) {
  open_connection(true);
  begin_immediate();
  try {
    version_.forget();  // rare enough to check: another connection may have dropped it
    version_.ensure(handle());
    version_.write(handle(), state);
    if (!rows.empty()) {
      history_.ensure(handle());
      const auto now = std::chrono::steady_clock::now();
      for (const auto& row : rows) history_.append(handle(), row, now);
    }
    exec("COMMIT", "cannot update the version table " + version_.name());
  } catch (...) {
    rollback_quietly();
    forget_tables();
    throw;
  }
}

std::optional<std::vector<HistoryRow>> SqliteDriver::history() {
  if (!open_connection(false)) return std::nullopt;
  return history_.read(handle());
}

std::optional<std::vector<HistoryMark>> SqliteDriver::history_marks() {
  if (!open_connection(false)) return std::nullopt;
  return history_.read_marks(handle());
}

std::map<Version, std::string> SqliteDriver::stored_downs(const std::vector<Version>& versions) {
  if (!open_connection(false)) return {};
  return history_.stored_downs(handle(), versions);
}

void SqliteDriver::drop() {
  if (!open_connection(false)) return;  // no file: nothing to drop
  // The version and history tables go too: their statements are prepared again when they are
  // back.
  finalize_statements();
  forget_tables();
  sqlite::drop_everything(handle(), description_, busy_ms_);
}

}  // namespace

std::unique_ptr<Driver> open_sqlite(const Url& url) { return std::make_unique<SqliteDriver>(url); }

}  // namespace dbstep::drivers
