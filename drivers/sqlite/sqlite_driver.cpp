#include "drivers/sqlite/sqlite_driver.hpp"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <unistd.h>

#include <SQLiteCpp/Backup.h>
#include <SQLiteCpp/SQLiteCpp.h>
#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/error.hpp"
#include "core/sql_text.hpp"
#include "core/statement_accounting.hpp"
#include "drivers/sqlite/cached_statement.hpp"
#include "drivers/sqlite/connection_options.hpp"
#include "drivers/sqlite/history_table.hpp"
#include "drivers/sqlite/schema_snapshot.hpp"
#include "drivers/sqlite/preview.hpp"
#include "drivers/sqlite/statements.hpp"
#include "drivers/sqlite/table_name.hpp"

namespace dbstep::drivers {

namespace {

// "20261201-131500", now, UTC: the time in a backup's name.
std::string utc_stamp() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  ::gmtime_r(&now, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y%m%d-%H%M%S", &tm);
  return text;
}

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

enum class Wrap {
  kNone,         // the file runs as written, outside any transaction of ours
  kTransaction,  // inside our transaction
  kForeignKeysOff,  // inside our transaction, foreign keys off around it
};

using sqlite::CachedStatement;
using sqlite::ResetAfterUse;

class SqliteDriver final : public Driver {
 public:
  explicit SqliteDriver(const Url& url);
  ~SqliteDriver() override {
    interruptible_.store(nullptr);
    finalize_statements();
    release_lock_file();
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
  std::optional<std::string> stored_down(Version version) override;
  std::map<Version, std::string> stored_downs(const std::vector<Version>& versions) override;
  void record_state(const DbState& state, const std::vector<HistoryRow>& rows) override;
  void drop() override;
  std::string describe() const override { return fmt::format("SQLite database {}", path_); }
  void check_backup() const override {
    if (path_ == ":memory:") {
      throw Error(ErrorCode::kInvalidArgument,
                  "--backup needs a database file: an in-memory SQLite database has none");
    }
  }
  std::optional<std::string> backup(const DbState& state) override;
  std::string schema_snapshot() override {
    if (!open_connection(false)) return "dialect sqlite\n";  // no file yet: an empty schema
    return sqlite::schema_snapshot(*db_, {table_, history_.name()});
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
  sqlite3* handle() const { return db_->getHandle(); }
  // Runs SQL written by the driver itself (no user text); throws Error(kDatabase) with context.
  void exec(const std::string& sql, std::string_view what);
  void begin_immediate();
  // BEGIN IMMEDIATE, the version table, and the state check every write starts with: false
  // (and no transaction left open) when the stored state is not `expected`.
  bool begin_checked(const DbState& expected);
  void rollback_quietly() noexcept;
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
  void ensure_table();
  DbState read_state();
  void write_state(const DbState& state);
  // Walks `sql` statement by statement with sqlite3_prepare_v2 and its tail, stepping each.
  // Inside our transaction (`wrap` != kNone), a file wrapped in one plain BEGIN ... COMMIT has
  // the wrapper skipped; other transaction control or VACUUM throws NeedsNoTransaction, and
  // `PRAGMA foreign_keys` with keys on throws NeedsForeignKeysOff, before anything runs.
  // Throws Error(kMigrationFailed) locating the failing statement.
  void run_file(const Step& step, Wrap wrap);
  // After a failed run outside a transaction that left nothing behind: takes the dirty mark
  // back (`state` is the one before it). Best effort: on failure the database stays dirty.
  void restore_state_quietly(const DbState& state) noexcept;
  bool foreign_keys_on();
  // PRAGMA foreign_key_check after a run with keys off: a violation fails the migration.
  void check_foreign_keys(const Step& step);
  Error database_error(std::string_view what) const;
  // Opens the connection if the file exists (or `create`); returns whether it is open. Until
  // something is written, a database file that does not exist is not created, so `version`, a
  // failed run or a bad source never leaves an empty file behind.
  bool open_connection(bool create);
  void release_lock_file() noexcept;
  void finalize_statements() noexcept;

  std::string path_;
  std::string filename_;
  int flags_ = 0;
  bool memory_ = false;
  std::vector<std::string> pragmas_;
  int busy_ms_ = 15000;
  bool busy_from_url_ = false;  // _busy_timeout in the URL wins over the lock timeout
  int lock_fd_ = -1;            // the flock()ed <db>.dbstep-lock while locked
  std::string table_;  // the version table's name in its schema
  std::string quoted_index_;
  std::string quoted_table_;
  std::string index_name_;
  bool no_tx_wrap_ = false;
  bool locked_ = false;
  bool table_ready_ = false;
  bool file_committed_ = false;  // run_file() outside a transaction: a statement was committed
  bool history_ready_ = false;   // the history table is known to exist
  std::unique_ptr<SQLite::Database> db_;
  // db_'s handle while it is open, for interrupt() from another thread or a signal handler.
  std::atomic<sqlite3*> interruptible_{nullptr};
  // Declared after db_, so that they are finalized before it closes even without the destructor.
  CachedStatement select_state_;
  CachedStatement delete_state_;
  CachedStatement insert_state_;
  sqlite::HistoryTable history_{"schema_migrations_history"};
  // The x- and go-sqlite3 `_` parameters, for a scratch database that behaves like this one.
  std::vector<std::pair<std::string, std::string>> scratch_params_;
  std::unique_ptr<sqlite::PreviewRun> preview_run_;  // the dry run's scratch copy, when asked
};

SqliteDriver::SqliteDriver(const Url& url) {
  sqlite::ConnectionOptions o = sqlite::parse_connection_options(url);
  path_ = std::move(o.path);
  filename_ = std::move(o.filename);
  flags_ = o.flags;
  memory_ = o.memory;
  pragmas_ = std::move(o.pragmas);
  busy_ms_ = o.busy_ms;
  busy_from_url_ = o.busy_from_url;
  no_tx_wrap_ = o.no_tx_wrap;
  scratch_params_ = std::move(o.scratch_params);
  // x-migrations-table=main.mig is table mig in schema main, as SQLite reads golang-migrate's
  // unquoted `main.mig`; the history table and the index go in the same schema.
  const sqlite::TableName version_table = sqlite::parse_table_name(o.version_table);
  table_ = version_table.table;
  quoted_table_ = version_table.quoted();
  const sqlite::TableName history_table =
      o.history_table.empty() ? version_table.sibling(default_history_table(version_table.table))
                              : sqlite::parse_table_name(o.history_table);
  history_ = sqlite::HistoryTable(history_table.table, history_table.schema);
  select_state_.set_sql(fmt::format("SELECT version, dirty FROM {} LIMIT 1", quoted_table_));
  delete_state_.set_sql(fmt::format("DELETE FROM {}", quoted_table_));
  insert_state_.set_sql(fmt::format("INSERT INTO {} (version, dirty) VALUES (?, ?)", quoted_table_));
  index_name_ = table_ == "schema_migrations" ? "version_unique" : table_ + "_version_unique";
  // CREATE INDEX names the schema on the index, never on the table.
  quoted_index_ = version_table.sibling(index_name_).quoted();

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

// SQLite's message, with the operating system's reason for an I/O error ("disk I/O error: File
// too large" under a file-size limit, "No space left on device" on a full disk).
std::string sqlite_message(sqlite3* db, std::string_view message) {
  const int rc = sqlite3_extended_errcode(db) & 0xff;
  const int sys = sqlite3_system_errno(db);
  if ((rc == SQLITE_IOERR || rc == SQLITE_FULL || rc == SQLITE_CANTOPEN) && sys != 0) {
    return fmt::format("{} ({})", message, std::strerror(sys));
  }
  return std::string(message);
}

Error SqliteDriver::database_error(std::string_view what) const {
  Error e(ErrorCode::kDatabase, fmt::format("{} in {}: {}", what, describe(),
                                            sqlite_message(handle(), sqlite3_errmsg(handle()))));
  e.sqlstate = std::to_string(sqlite3_extended_errcode(handle()));
  return e;
}

void SqliteDriver::exec(const std::string& sql, std::string_view what) {
  char* message = nullptr;
  if (sqlite3_exec(handle(), sql.c_str(), nullptr, nullptr, &message) != SQLITE_OK) {
    std::string text = sqlite_message(handle(), message ? message : "unknown error");
    sqlite3_free(message);
    Error e(ErrorCode::kDatabase, fmt::format("{} in {}: {}", what, describe(), text));
    e.sqlstate = std::to_string(sqlite3_extended_errcode(handle()));
    throw e;
  }
}

void SqliteDriver::begin_immediate() {
  // IMMEDIATE takes the write lock now, so reading the state and writing the migration happen
  // with no other writer in between; a second process waits here for the busy timeout.
  if (sqlite3_exec(handle(), "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK) return;
  if ((sqlite3_extended_errcode(handle()) & 0xff) == SQLITE_BUSY) {
    throw Error(ErrorCode::kLockTimeout,
                fmt::format("timed out after {} ms waiting for the write lock on {}: another "
                            "connection kept it (raise --lock-timeout, or find the process "
                            "holding the database open in a transaction)",
                            busy_ms_, describe()));
  }
  throw database_error("cannot start a write transaction");
}

bool SqliteDriver::begin_checked(const DbState& expected) {
  begin_immediate();
  try {
    ensure_table();
    const DbState seen = read_state();
    // Another connection dropped the table since this one made it: make it again.
    if (!table_ready_) ensure_table();
    if (seen == expected) return true;
  } catch (...) {
    rollback_quietly();
    table_ready_ = history_ready_ = false;
    throw;
  }
  rollback_quietly();
  return false;
}

void SqliteDriver::rollback_quietly() noexcept {
  if (!sqlite3_get_autocommit(handle())) sqlite3_exec(handle(), "ROLLBACK", nullptr, nullptr, nullptr);
}

void SqliteDriver::lock(std::chrono::milliseconds timeout, const std::atomic<bool>* stop) {
  // SQLite has no lock that outlives a transaction, so a run's lock is an exclusive flock() on
  // a file beside the database, <db>.dbstep-lock (left in place: deleting a lock file races with
  // its next user). It keeps a second dbstep process from reading the state while this one runs
  // a migration outside a transaction (where it would see "dirty"). golang-migrate does not take
  // it; apply()'s state check inside BEGIN IMMEDIATE keeps the two from applying a migration
  // twice. Where the file cannot be created (read-only folder) only that check remains.
  if (locked_) {
    throw Error(ErrorCode::kLocked, fmt::format("{} is already locked by this process", describe()));
  }
  if (!busy_from_url_) {
    busy_ms_ = static_cast<int>(std::min<std::int64_t>(timeout.count(), std::numeric_limits<int>::max()));
    if (db_) sqlite3_busy_timeout(handle(), busy_ms_);
  }
  if (!memory_) {
    const std::string lock_path = path_ + ".dbstep-lock";
    int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd >= 0) {
      const auto started = std::chrono::steady_clock::now();
      const auto deadline = started + timeout;
      // Closes fd and says who holds the lock (the holder writes its pid into the file).
      auto give_up = [&] {
        char holder[32] = {};
        [[maybe_unused]] auto n = ::pread(fd, holder, sizeof holder - 1, 0);
        ::close(fd);
        std::string pid(holder);
        while (!pid.empty() && (pid.back() == '\n' || pid.back() == ' ')) pid.pop_back();
        return fmt::format("{} holds {}", pid.empty() ? "another process" : "process " + pid,
                           lock_path);
      };
      auto pause = std::chrono::milliseconds(2);
      while (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno != EWOULDBLOCK && errno != EINTR) break;  // no flock here: the state check remains
        if (std::chrono::steady_clock::now() >= deadline) {
          throw Error(ErrorCode::kLockTimeout,
                      fmt::format("timed out after {} ms waiting for the migration lock on {}: {}",
                                  timeout.count(), describe(), give_up()));
        }
        if (sleep_unless_stopped(pause, stop)) {
          const auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(
              std::chrono::steady_clock::now() - started);
          throw Error(ErrorCode::kStopped,
                      fmt::format("stopped after {} ms waiting for the migration lock on {}: "
                                  "nothing was applied; {}",
                                  waited.count(), describe(), give_up()));
        }
        pause = std::min(pause * 2, std::chrono::milliseconds(50));
      }
      // Say who holds it, for the next process's timeout message.
      std::string me = std::to_string(::getpid()) + "\n";
      if (::ftruncate(fd, 0) == 0) {
        [[maybe_unused]] auto n = ::pwrite(fd, me.data(), me.size(), 0);
      }
      lock_fd_ = fd;
    }
  }
  locked_ = true;
}

void SqliteDriver::unlock() {
  if (!locked_) {
    throw Error(ErrorCode::kLocked, "can't unlock, as not currently locked");
  }
  release_lock_file();
  locked_ = false;
}

void SqliteDriver::release_lock_file() noexcept {
  if (lock_fd_ >= 0) {
    if (::ftruncate(lock_fd_, 0) != 0) {
      // Only the holder's pid is lost; the lock itself goes with close().
    }
    ::close(lock_fd_);  // releases the flock
    lock_fd_ = -1;
  }
}

void SqliteDriver::finalize_statements() noexcept {
  select_state_.finalize();
  delete_state_.finalize();
  insert_state_.finalize();
  history_.finalize();
}

void SqliteDriver::ensure_table() {
  if (table_ready_) return;
  exec(fmt::format("CREATE TABLE IF NOT EXISTS {} (version uint64, dirty bool)", quoted_table_),
       "cannot create the version table " + table_);
  exec(fmt::format("CREATE UNIQUE INDEX IF NOT EXISTS {} ON {} (version)", quoted_index_,
                   quote_identifier(table_)),
       "cannot create the version table's index");
  table_ready_ = true;
}

DbState SqliteDriver::read_state() {
  // No table is no version. SQLite says so when preparing, or when stepping if the table was
  // dropped after the statement was prepared (by this connection or another).
  auto no_table = [this] {
    return std::string_view(sqlite3_errmsg(handle())).rfind("no such table", 0) == 0;
  };
  sqlite3_stmt* stmt = select_state_.get(handle());
  if (!stmt) {
    if (no_table()) {
      table_ready_ = false;
      return DbState{};
    }
    throw database_error("cannot read the version table " + table_);
  }
  ResetAfterUse reset(select_state_);
  DbState state;
  int rc = sqlite3_step(stmt);
  if (rc == SQLITE_ROW) {
    sqlite3_int64 v = sqlite3_column_int64(stmt, 0);
    if (v >= 0) state.version = static_cast<Version>(v);
    state.dirty = sqlite3_column_int64(stmt, 1) != 0;
    rc = sqlite3_step(stmt);
  }
  if (rc != SQLITE_DONE) {
    if (no_table()) {
      table_ready_ = false;
      return DbState{};
    }
    throw database_error("cannot read the version table " + table_);
  }
  return state;
}

void SqliteDriver::write_state(const DbState& state) {
  if (state.version && *state.version > static_cast<Version>(std::numeric_limits<std::int64_t>::max())) {
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("version {} is larger than SQLite's largest integer", *state.version));
  }
  auto run = [this](CachedStatement& statement, auto&& bind) {
    sqlite3_stmt* stmt = statement.get(handle());
    if (!stmt) throw database_error("cannot update the version table " + table_);
    ResetAfterUse reset(statement);
    bind(stmt);
    if (sqlite3_step(stmt) != SQLITE_DONE) {
      throw database_error("cannot update the version table " + table_);
    }
  };
  run(delete_state_, [](sqlite3_stmt*) {});
  // golang-migrate stores (-1, dirty) as a row and (-1, clean) as no row.
  if (state.version || state.dirty) {
    std::int64_t v = state.version ? static_cast<std::int64_t>(*state.version) : -1;
    run(insert_state_, [&](sqlite3_stmt* stmt) {
      sqlite3_bind_int64(stmt, 1, v);
      sqlite3_bind_int(stmt, 2, state.dirty ? 1 : 0);
    });
  }
}

DbState SqliteDriver::state() {
  if (!open_connection(false)) return DbState{};
  return read_state();
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
          if (wrap == Wrap::kTransaction && foreign_keys_on()) throw NeedsForeignKeysOff{};
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
    write_state(state);
    exec("COMMIT", "cannot take back the dirty mark");
  } catch (...) {
    rollback_quietly();
  }
}

bool SqliteDriver::foreign_keys_on() {
  sqlite3_stmt* stmt = nullptr;
  bool on = false;
  if (sqlite3_prepare_v2(handle(), "PRAGMA foreign_keys", -1, &stmt, nullptr) == SQLITE_OK &&
      sqlite3_step(stmt) == SQLITE_ROW) {
    on = sqlite3_column_int(stmt, 0) != 0;
  }
  sqlite3_finalize(stmt);
  return on;
}

void SqliteDriver::check_foreign_keys(const Step& step) {
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(handle(), "PRAGMA foreign_key_check", -1, &stmt, nullptr) != SQLITE_OK) {
    throw database_error("cannot check foreign keys");
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
  {
    // A database without a single table, index or view (a new, empty file) holds nothing either.
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(handle(), "SELECT 1 FROM sqlite_master LIMIT 1", -1, &stmt, nullptr) !=
        SQLITE_OK) {
      sqlite3_finalize(stmt);
      throw database_error("cannot read the schema before the backup");
    }
    const bool empty = sqlite3_step(stmt) != SQLITE_ROW;
    sqlite3_finalize(stmt);
    if (empty) return std::nullopt;
  }
  const std::string target =
      fmt::format("{}.backup-v{}-{}", path_, to_string(state.version), utc_stamp());
  auto failed = [&](std::string_view why) {
    return Error(ErrorCode::kDatabase,
                 fmt::format("cannot back up {} to {}: {}; no migration was run", describe(),
                             target, why));
  };
  // O_EXCL: an existing file of that name (another backup this second) is never overwritten.
  const int fd = ::open(target.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) throw failed(std::strerror(errno));
  ::close(fd);
  auto remove_copy = [&] {
    std::error_code ec;
    std::filesystem::remove(target, ec);
    std::filesystem::remove(target + "-journal", ec);
  };
  try {
    SQLite::Database copy(target, SQLite::OPEN_READWRITE);
    SQLite::Backup backup(copy, *db_);
    // Every page in one step, so the copy is one consistent moment. Another connection writing
    // (BUSY, LOCKED) is waited for up to the busy timeout.
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::milliseconds(busy_ms_);
    int rc;
    while ((rc = backup.executeStep(-1)) == SQLITE_BUSY || rc == SQLITE_LOCKED) {
      if (std::chrono::steady_clock::now() >= give_up) {
        throw SQLite::Exception("the database stayed locked by another connection", rc);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (rc != SQLITE_DONE) throw SQLite::Exception("the copy did not finish", rc);
  } catch (const SQLite::Exception& e) {
    remove_copy();
    throw failed(e.what());
  }
  return target;
}

void SqliteDriver::remove_if_empty() noexcept {
  std::error_code ec;
  if (!db_ || std::filesystem::file_size(path_, ec) != 0 || ec) return;
  interruptible_.store(nullptr);
  finalize_statements();
  db_.reset();
  table_ready_ = history_ready_ = false;
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
      write_state(done);
      exec("COMMIT", "cannot commit migration " + std::to_string(step.version));
      return true;
    } catch (const NeedsNoTransaction&) {
      rollback_quietly();
      table_ready_ = history_ready_ = false;  // the rollback may have undone their creation
      wrap = Wrap::kNone;
    } catch (const NeedsForeignKeysOff&) {
      rollback_quietly();
      table_ready_ = history_ready_ = false;
      wrap = Wrap::kForeignKeysOff;
    } catch (...) {
      rollback_quietly();
      table_ready_ = history_ready_ = false;
      throw;
    }
  }

  // golang-migrate's dirty protocol: {target, dirty}, the file as written, {target, clean}.
  if (!begin_checked(expected)) return false;
  try {
    write_state(DbState{step.target, true});
    exec("COMMIT", "cannot mark the database dirty");
  } catch (...) {
    rollback_quietly();
    table_ready_ = false;
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
    write_state(done);
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
    if (last) write_state(*last);
    exec("COMMIT", "cannot commit the migrations");
    return true;
  } catch (...) {
    rollback_quietly();
    table_ready_ = history_ready_ = false;
    throw;
  }
}

void SqliteDriver::set_state(const DbState& state) { record_state(state, {}); }

void SqliteDriver::record_state(const DbState& state, const std::vector<HistoryRow>& rows) {
  open_connection(true);
  begin_immediate();
  try {
    table_ready_ = false;  // rare enough to check: another connection may have dropped it
    ensure_table();
    write_state(state);
    if (!rows.empty()) {
      history_.ensure(handle());
      const auto now = std::chrono::steady_clock::now();
      for (const auto& row : rows) history_.append(handle(), row, now);
    }
    exec("COMMIT", "cannot update the version table " + table_);
  } catch (...) {
    rollback_quietly();
    table_ready_ = history_ready_ = false;
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

std::optional<std::string> SqliteDriver::stored_down(Version version) {
  auto found = stored_downs({version});
  if (found.empty()) return std::nullopt;
  return std::move(found.begin()->second);
}

std::map<Version, std::string> SqliteDriver::stored_downs(const std::vector<Version>& versions) {
  if (!open_connection(false)) return {};
  return history_.stored_downs(handle(), versions);
}

void SqliteDriver::drop() {
  if (!open_connection(false)) return;  // no file: nothing to drop
  // Foreign keys would make dropping a parent table fail (or cascade row by row); the pragma
  // cannot change inside a transaction, so it is switched off around it and restored.
  bool foreign_keys = false;
  {
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(handle(), "PRAGMA foreign_keys", -1, &stmt, nullptr) == SQLITE_OK &&
        sqlite3_step(stmt) == SQLITE_ROW) {
      foreign_keys = sqlite3_column_int(stmt, 0) != 0;
    }
    sqlite3_finalize(stmt);
  }
  if (foreign_keys) exec("PRAGMA foreign_keys = OFF", "cannot switch off foreign keys");
  begin_immediate();
  try {
    std::vector<std::pair<std::string, std::string>> objects;  // (type, name)
    sqlite3_stmt* stmt = nullptr;
    // Views first (they may name tables); indexes and triggers go with their tables. SQLite's own
    // tables (sqlite_sequence, sqlite_stat1 ...) cannot be dropped and are skipped.
    const char* sql =
        "SELECT type, name FROM sqlite_master WHERE type IN ('view', 'table') "
        "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY type = 'table', name";
    if (sqlite3_prepare_v2(handle(), sql, -1, &stmt, nullptr) != SQLITE_OK) {
      throw database_error("cannot list the schema");
    }
    while (sqlite3_step(stmt) == SQLITE_ROW) {
      objects.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0)),
                           reinterpret_cast<const char*>(sqlite3_column_text(stmt, 1)));
    }
    sqlite3_finalize(stmt);
    for (const auto& [type, name] : objects) {
      exec(fmt::format("DROP {} IF EXISTS {}", type == "view" ? "VIEW" : "TABLE", quote_identifier(name)),
           fmt::format("cannot drop {} {}", type, name));
    }
    exec("COMMIT", "cannot commit the drop");
  } catch (...) {
    rollback_quietly();
    if (foreign_keys) sqlite3_exec(handle(), "PRAGMA foreign_keys = ON", nullptr, nullptr, nullptr);
    throw;
  }
  table_ready_ = history_ready_ = false;
  // The version and history tables are gone: their statements are prepared again when they are
  // back. (They are
  // reset, so they hold nothing that would keep VACUUM from running.)
  finalize_statements();
  if (foreign_keys) exec("PRAGMA foreign_keys = ON", "cannot switch foreign keys back on");
  exec("VACUUM", "cannot vacuum after dropping");
}

}  // namespace

std::unique_ptr<Driver> open_sqlite(const Url& url) { return std::make_unique<SqliteDriver>(url); }

}  // namespace dbstep::drivers
