#pragma once
// golang-migrate's version table on SQLite, as its sqlite3 driver makes it:
//   CREATE TABLE IF NOT EXISTS schema_migrations (version uint64, dirty bool)
//   CREATE UNIQUE INDEX IF NOT EXISTS version_unique ON schema_migrations
//   (version)
// holding one row: {none, clean} is an empty table, {none, dirty} the row (-1,
// 1). The index is <table>_version_unique for a table of another name, in the
// table's schema.
//
// The driver calls ensure(), read() and write() inside its own write
// transaction (BEGIN IMMEDIATE), so reading the state and writing the next one
// happen with no other writer in between. read() runs once and write() twice
// per migration: their SELECT, DELETE and INSERT are prepared once per
// connection (cached_statement.hpp), and finalize() must run before the
// connection closes. Used from the driver's thread.

#include <sqlite3.h>

#include <string>

#include "core/driver.hpp"
#include "drivers/sqlite/cached_statement.hpp"
#include "drivers/sqlite/table_name.hpp"

namespace dbstep::drivers::sqlite {

class VersionTable {
 public:
  // `table` as x-migrations-table names it; `database` as the driver describes
  // the database, for messages.
  VersionTable(const TableName& table, std::string database);
  // The table's name in its schema, for messages.
  const std::string& name() const { return table_; }

  // Creates the table and its index if missing (in the caller's transaction);
  // does nothing once they are known to exist. Throws Error(kDatabase).
  void ensure(sqlite3* db);
  // The stored state; {none, clean} when the table does not exist (it is then
  // no longer known to exist). Throws Error(kDatabase) naming the table.
  DbState read(sqlite3* db);
  // Replaces the row with `state`. Throws Error(kInvalidArgument) for a version
  // past SQLite's largest integer, Error(kDatabase) naming the table.
  void write(sqlite3* db, const DbState& state);
  // The table may be gone (a rollback undid its creation, another connection
  // dropped it): the next ensure() makes it again if needed.
  void forget() noexcept { ready_ = false; }
  // Statements must be finalized before the connection closes.
  void finalize() noexcept {
    select_.finalize();
    delete_.finalize();
    insert_.finalize();
  }

 private:
  std::string table_;
  std::string quoted_table_;
  std::string quoted_index_;
  std::string database_;
  bool ready_ = false;  // the table is known to exist
  CachedStatement select_;
  CachedStatement delete_;
  CachedStatement insert_;
};

}  // namespace dbstep::drivers::sqlite
