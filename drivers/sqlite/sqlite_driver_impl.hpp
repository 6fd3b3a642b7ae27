#pragma once
// Internal to drivers/sqlite: the SQLite driver's class, shared by the files that define its
// members: sqlite_driver.cpp (connecting, the state, the lock, the backup, the history, drop) and
// apply.cpp (running migrations: one step in a transaction of ours, with foreign keys off around
// it, or under golang-migrate's dirty protocol; --single-transaction's batch). The library's
// interface is sqlite_driver.hpp, which shows none of this.

#include <SQLiteCpp/SQLiteCpp.h>
#include <sqlite3.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "core/driver.hpp"
#include "core/error.hpp"
#include "core/url.hpp"
#include "drivers/sqlite/connection_options.hpp"
#include "drivers/sqlite/driver_sql.hpp"
#include "drivers/sqlite/history_table.hpp"
#include "drivers/sqlite/lock_file.hpp"
#include "drivers/sqlite/preview.hpp"
#include "drivers/sqlite/schema_snapshot.hpp"
#include "drivers/sqlite/version_table.hpp"

namespace dbstep::drivers::sqlite {

enum class Wrap {
  kNone,            // the file runs as written, outside any transaction of ours
  kTransaction,     // inside our transaction
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

}  // namespace dbstep::drivers::sqlite
