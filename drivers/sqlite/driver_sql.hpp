#pragma once
// The SQL the SQLite driver writes itself (no user text) on its connection:
// running it, the write transaction every change starts with, and SQLite's
// errors turned into dbstep::Error. Every message names the database as the
// driver describes it (`database`: "SQLite database app.db"). Internal to
// drivers/sqlite; used from the driver's thread.

#include <sqlite3.h>

#include <functional>
#include <string>
#include <string_view>

#include "core/error.hpp"

namespace dbstep::drivers::sqlite {

// SQLite's `message`, with the operating system's reason for an I/O error
// ("disk I/O error: File too large" under a file-size limit, "No space left on
// device" on a full disk).
std::string sqlite_message(sqlite3* db, std::string_view message);

// Error(kDatabase) "<what> in <database>: <SQLite's current error>", its
// extended code as the sqlstate.
Error database_error(sqlite3* db, std::string_view what, std::string_view database);

// Runs `sql`; throws Error(kDatabase) as database_error() does, with SQLite's
// message for it.
void exec(sqlite3* db, const std::string& sql, std::string_view what, std::string_view database);

// BEGIN IMMEDIATE: takes the write lock now, waiting for another connection up
// to the busy timeout (`busy_ms`, for the message). Throws Error(kLockTimeout)
// when it stayed busy, Error(kDatabase) otherwise.
void begin_immediate(sqlite3* db, std::string_view database, int busy_ms);

// Calls `attempt` until it returns true, pausing between calls (1 ms, doubling to 50 ms), for
// at most `busy_ms` after the first call: for what SQLite answers busy without running the busy
// handler (a backup step, a PRAGMA journal_mode = WAL conversion). Returns false when time ran
// out with `attempt` still false; `attempt`'s exceptions pass through.
bool retry_while_busy(int busy_ms, const std::function<bool()>& attempt);

// Rolls back the open transaction, if any; never fails.
void rollback_quietly(sqlite3* db) noexcept;

// PRAGMA foreign_keys: whether the connection enforces them (false when it
// cannot tell).
bool foreign_keys_on(sqlite3* db);

}  // namespace dbstep::drivers::sqlite
