#pragma once
// The history table on SQLite (core/history.hpp): its shape, and appending and reading its rows
// on the driver's connection. The driver calls append() inside the step's own transaction, so a
// step and its row commit together; read() never creates the table.
//
//   CREATE TABLE "<name>" (id INTEGER PRIMARY KEY, version INTEGER NOT NULL,
//     identifier TEXT NOT NULL, direction TEXT NOT NULL, kind TEXT NOT NULL, checksum TEXT,
//     down_sql BLOB, applied_at TEXT NOT NULL, duration_ms REAL NOT NULL,
//     applied_by TEXT NOT NULL, dbstep_version TEXT NOT NULL)
//
// down_sql is a BLOB: a down file's bytes are kept exactly, whatever their encoding.

#include <sqlite3.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "core/history.hpp"
#include "drivers/sqlite/statements.hpp"

namespace dbstep::drivers::sqlite {

class HistoryTable {
 public:
  // `schema` empty: the name is unqualified (x-history-table=NAME, or the version table's).
  explicit HistoryTable(std::string name, std::string schema = "");
  const std::string& name() const { return name_; }

  // Creates the table if it is missing (in the caller's transaction).
  void ensure(sqlite3* db);
  // Appends `row` (its id and duration are set here: the duration runs from `started` to now).
  // Throws Error(kDatabase) naming the table.
  void append(sqlite3* db, const HistoryRow& row, std::chrono::steady_clock::time_point started);
  // Every row in id order, without down_sql (down_stored says whether there is one); nullopt
  // when the table does not exist. Throws Error(kDatabase) naming the table when it is not
  // dbstep's shape, and naming the row when a row is malformed (unknown kind or direction).
  std::optional<std::vector<HistoryRow>> read(sqlite3* db);
  // The down SQL stored by the latest up row of `version`, if any.
  std::optional<std::string> stored_down(sqlite3* db, Version version);
  // Statements must be finalized before the connection closes.
  void finalize() noexcept { insert_.reset(); }

 private:
  std::string name_;
  std::string quoted_;
  StatementPtr insert_;
};

}  // namespace dbstep::drivers::sqlite
