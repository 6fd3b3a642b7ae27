// The SQLite driver: ties the connection's settings (connection_options.hpp), the statement walk
// (statements.hpp), golang-migrate's version table (version_table.hpp), the history table
// (history_table.hpp), the run lock (lock_file.hpp), the backup (backup.hpp), drop (drop.hpp),
// the dry run (preview.hpp) and the schema snapshot (schema_snapshot.hpp) into a dbstep::Driver
// (sqlite_driver_impl.hpp). This file: connecting, the state, the lock, the backup, the history,
// drop; running migrations is apply.cpp.
//
// Every write is one BEGIN IMMEDIATE transaction that checks the stored state first (another
// process may have moved it). A migration runs inside it unless it cannot (it controls
// transactions itself, holds VACUUM, says dbstep:no-transaction, or x-no-tx-wrap is set): then
// golang-migrate's dirty protocol applies, {target, dirty}, the file as written, {target, clean}.
// The database file is created by the first write, never by a read or a failed first migration.

#include "drivers/sqlite/sqlite_driver.hpp"
#include "drivers/sqlite/sqlite_driver_impl.hpp"

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

#include "core/error.hpp"
#include "drivers/sqlite/backup.hpp"
#include "drivers/sqlite/connection_options.hpp"
#include "drivers/sqlite/driver_sql.hpp"
#include "drivers/sqlite/drop.hpp"
#include "drivers/sqlite/history_table.hpp"
#include "drivers/sqlite/lock_file.hpp"
#include "drivers/sqlite/schema_snapshot.hpp"
#include "drivers/sqlite/table_name.hpp"
#include "drivers/sqlite/version_table.hpp"

namespace dbstep::drivers {

namespace sqlite {

namespace {

// x-history-table, or by default a sibling of the version table named after it.
sqlite::HistoryTable history_table_of(const sqlite::ConnectionOptions& o) {
  const sqlite::TableName version_table = sqlite::parse_table_name(o.version_table);
  const sqlite::TableName history_table =
      o.history_table.empty() ? version_table.sibling(default_history_table(version_table.table))
                              : sqlite::parse_table_name(o.history_table);
  return sqlite::HistoryTable(history_table.table, history_table.schema);
}

// Runs one of the URL's PRAGMAs on a connection just opened. PRAGMA journal_mode = WAL converts
// a rollback-journal file under an exclusive lock, asked for while the statement already holds a
// shared one; SQLite answers BUSY at once rather than run the busy handler (two connections doing
// the same would wait on each other for ever). Processes opening a new database together saw
// "database is locked" at once, in about one 16-process race in 25 (concurrency_test.cpp). The
// statement holds no lock once it failed, so it runs again for as long as the busy timeout
// allows; a file already in WAL mode takes no exclusive lock and succeeds at once.
void run_pragma(SQLite::Database& db, const std::string& pragma, int busy_ms,
                std::string_view path) {
  const bool ran = retry_while_busy(busy_ms, [&] {
    try {
      db.exec(pragma);
      return true;
    } catch (const SQLite::Exception& e) {
      if (e.getErrorCode() != SQLITE_BUSY) throw;
      return false;
    }
  });
  if (!ran) {
    throw Error(ErrorCode::kLockTimeout,
                fmt::format("cannot open SQLite database {}: {} timed out after {} ms: another "
                            "connection kept the database locked (raise _busy_timeout in the "
                            "URL, or find the process holding it open in a transaction)",
                            path, pragma, busy_ms));
  }
}

}  // namespace

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
    for (const auto& p : pragmas_) sqlite::run_pragma(*db_, p, busy_ms_, path_);
    interruptible_.store(db_->getHandle());
  } catch (const SQLite::Exception& e) {
    finalize_statements();
    db_.reset();
    throw Error(ErrorCode::kDatabase,
                fmt::format("cannot open SQLite database {}: {}", path_, e.what()));
  } catch (...) {
    finalize_statements();
    db_.reset();
    throw;
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

}  // namespace sqlite

std::unique_ptr<Driver> open_sqlite(const Url& url) {
  return std::make_unique<sqlite::SqliteDriver>(url);
}

}  // namespace dbstep::drivers
