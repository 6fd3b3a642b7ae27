#include "drivers/sqlite/driver_sql.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <thread>

namespace dbstep::drivers::sqlite {

std::string sqlite_message(sqlite3* db, std::string_view message) {
  const int rc = sqlite3_extended_errcode(db) & 0xff;
  const int sys = sqlite3_system_errno(db);
  if ((rc == SQLITE_IOERR || rc == SQLITE_FULL || rc == SQLITE_CANTOPEN) && sys != 0) {
    return fmt::format("{} ({})", message, std::strerror(sys));
  }
  return std::string(message);
}

Error database_error(sqlite3* db, std::string_view what, std::string_view database) {
  Error e(ErrorCode::kDatabase,
          fmt::format("{} in {}: {}", what, database, sqlite_message(db, sqlite3_errmsg(db))));
  e.sqlstate = std::to_string(sqlite3_extended_errcode(db));
  return e;
}

void exec(sqlite3* db, const std::string& sql, std::string_view what, std::string_view database) {
  char* message = nullptr;
  if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &message) != SQLITE_OK) {
    std::string text = sqlite_message(db, message ? message : "unknown error");
    sqlite3_free(message);
    Error e(ErrorCode::kDatabase, fmt::format("{} in {}: {}", what, database, text));
    e.sqlstate = std::to_string(sqlite3_extended_errcode(db));
    throw e;
  }
}

void begin_immediate(sqlite3* db, std::string_view database, int busy_ms) {
  // IMMEDIATE takes the write lock now, so reading the state and writing the
  // migration happen with no other writer in between; a second process waits
  // here for the busy timeout.
  if (sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK) return;
  if ((sqlite3_extended_errcode(db) & 0xff) == SQLITE_BUSY) {
    throw Error(ErrorCode::kLockTimeout,
                fmt::format("timed out after {} ms waiting for the write lock on {}: another "
                            "connection kept it (raise --lock-timeout, or find the process "
                            "holding the database open in a transaction)",
                            busy_ms, database));
  }
  throw database_error(db, "cannot start a write transaction", database);
}

bool retry_while_busy(int busy_ms, const std::function<bool()>& attempt) {
  using std::chrono::milliseconds;
  const auto give_up = std::chrono::steady_clock::now() + milliseconds(busy_ms);
  for (milliseconds pause(1);; pause = std::min(pause * 2, milliseconds(50))) {
    if (attempt()) return true;
    if (std::chrono::steady_clock::now() >= give_up) return false;
    std::this_thread::sleep_for(pause);
  }
}

void rollback_quietly(sqlite3* db) noexcept {
  if (!sqlite3_get_autocommit(db)) sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
}

bool foreign_keys_on(sqlite3* db) {
  sqlite3_stmt* stmt = nullptr;
  bool on = false;
  if (sqlite3_prepare_v2(db, "PRAGMA foreign_keys", -1, &stmt, nullptr) == SQLITE_OK &&
      sqlite3_step(stmt) == SQLITE_ROW) {
    on = sqlite3_column_int(stmt, 0) != 0;
  }
  sqlite3_finalize(stmt);
  return on;
}

}  // namespace dbstep::drivers::sqlite
