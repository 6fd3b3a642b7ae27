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
#include <map>
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
  // read() reduced to each row's id, version, direction and kind, with the same errors.
  std::optional<std::vector<HistoryMark>> read_marks(sqlite3* db);
  // The down SQL stored by the latest up row of each of `versions` that has one (one query).
  std::map<Version, std::string> stored_downs(sqlite3* db, const std::vector<Version>& versions);
  // Statements must be finalized before the connection closes.
  void finalize() noexcept {
    insert_.reset();
    marks_.reset();
  }

 private:
  // The rows' `columns` in id order, prepared with `flags`; nullptr when the table does not
  // exist.
  StatementPtr select(sqlite3* db, const char* columns, unsigned flags = 0) const;
  // The first four columns of a row (id, version, direction, kind), checked.
  HistoryMark mark_of(sqlite3_stmt* stmt) const;
  void check_done(sqlite3* db, int rc) const;

  std::string name_;
  std::string quoted_;
  StatementPtr insert_;
  StatementPtr marks_;  // read_marks()'s, prepared once
};

}  // namespace dbstep::drivers::sqlite
