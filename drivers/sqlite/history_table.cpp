#include "drivers/sqlite/history_table.hpp"

#include <fmt/format.h>

#include "core/error.hpp"
#include "core/sql_text.hpp"

namespace dbstep::drivers::sqlite {

namespace {

constexpr const char* kColumns =
    "id, version, identifier, direction, kind, checksum, down_sql IS NOT NULL, applied_at, "
    "duration_ms, applied_by, dbstep_version";

std::string column_text(sqlite3_stmt* stmt, int i) {
  const auto* t = sqlite3_column_text(stmt, i);
  return t ? reinterpret_cast<const char*>(t) : std::string();
}

}  // namespace

HistoryTable::HistoryTable(std::string name, std::string schema)
    : name_(std::move(name)),
      quoted_(schema.empty() ? quote_identifier(name_)
                             : quote_identifier(schema) + "." + quote_identifier(name_)) {}

void HistoryTable::ensure(sqlite3* db) {
  const std::string sql = fmt::format(
      "CREATE TABLE IF NOT EXISTS {} (id INTEGER PRIMARY KEY, version INTEGER NOT NULL, "
      "identifier TEXT NOT NULL, direction TEXT NOT NULL, kind TEXT NOT NULL, checksum TEXT, "
      "down_sql BLOB, applied_at TEXT NOT NULL, duration_ms REAL NOT NULL, "
      "applied_by TEXT NOT NULL, dbstep_version TEXT NOT NULL)",
      quoted_);
  char* message = nullptr;
  if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &message) != SQLITE_OK) {
    std::string text = message ? message : sqlite3_errmsg(db);
    sqlite3_free(message);
    throw Error(ErrorCode::kDatabase,
                fmt::format("cannot create the history table {}: {}", name_, text));
  }
}

void HistoryTable::append(sqlite3* db, const HistoryRow& row,
                          std::chrono::steady_clock::time_point started) {
  auto fail = [&] {
    Error e(ErrorCode::kDatabase,
            fmt::format("cannot append to the history table {}: {} (is it dbstep's history "
                        "table? see `dbstep status`)",
                        name_, sqlite3_errmsg(db)));
    e.sqlstate = std::to_string(sqlite3_extended_errcode(db));
    insert_.reset();
    return e;
  };
  if (!insert_) {
    const std::string sql = fmt::format(
        "INSERT INTO {} (version, identifier, direction, kind, checksum, down_sql, applied_at, "
        "duration_ms, applied_by, dbstep_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        quoted_);
    sqlite3_stmt* raw = nullptr;
    if (sqlite3_prepare_v3(db, sql.c_str(), -1, SQLITE_PREPARE_PERSISTENT, &raw, nullptr) !=
        SQLITE_OK) {
      sqlite3_finalize(raw);
      throw fail();
    }
    insert_.reset(raw);
  }
  sqlite3_stmt* stmt = insert_.get();
  sqlite3_reset(stmt);
  sqlite3_clear_bindings(stmt);
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
  auto text = [&](int i, const std::string& v) {
    sqlite3_bind_text(stmt, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  };
  sqlite3_bind_int64(stmt, 1, static_cast<sqlite3_int64>(row.version));
  text(2, row.identifier);
  text(3, to_string(row.direction));
  text(4, to_string(row.kind));
  if (row.checksum) text(5, *row.checksum);
  if (row.down_sql) {
    sqlite3_bind_blob(stmt, 6, row.down_sql->data(), static_cast<int>(row.down_sql->size()),
                      SQLITE_TRANSIENT);
  }
  text(7, row.applied_at);
  sqlite3_bind_double(stmt, 8, ms);
  text(9, row.applied_by);
  text(10, row.dbstep_version);
  const int rc = sqlite3_step(stmt);
  if (rc != SQLITE_DONE) throw fail();
  sqlite3_reset(stmt);
}

std::optional<std::vector<HistoryRow>> HistoryTable::read(sqlite3* db) {
  std::vector<HistoryRow> rows;
  const std::string sql = fmt::format("SELECT {} FROM {} ORDER BY id", kColumns, quoted_);
  sqlite3_stmt* raw = nullptr;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &raw, nullptr) != SQLITE_OK) {
    sqlite3_finalize(raw);
    const std::string message = sqlite3_errmsg(db);
    if (message.rfind("no such table", 0) == 0) return std::nullopt;
    throw Error(ErrorCode::kDatabase,
                fmt::format("the table {} is not dbstep's history table ({}); rename it, or name "
                            "another history table with x-history-table",
                            name_, message));
  }
  StatementPtr stmt(raw);
  int rc;
  while ((rc = sqlite3_step(raw)) == SQLITE_ROW) {
    HistoryRow row;
    row.id = sqlite3_column_int64(raw, 0);
    const sqlite3_int64 version = sqlite3_column_int64(raw, 1);
    row.identifier = column_text(raw, 2);
    const std::string direction = column_text(raw, 3);
    const std::string kind = column_text(raw, 4);
    auto bad = [&](std::string_view what) {
      return Error(ErrorCode::kDatabase,
                   fmt::format("the history table {} has a row dbstep cannot read (id {}): {}; "
                               "it was edited by hand or written by another tool",
                               name_, row.id, what));
    };
    if (version < 0) throw bad(fmt::format("version {}", version));
    row.version = static_cast<Version>(version);
    const auto d = parse_direction(direction);
    if (!d) throw bad(fmt::format("direction \"{}\"", direction));
    row.direction = *d;
    const auto k = parse_history_kind(kind);
    if (!k) throw bad(fmt::format("kind \"{}\"", kind));
    row.kind = *k;
    if (sqlite3_column_type(raw, 5) != SQLITE_NULL) row.checksum = column_text(raw, 5);
    row.down_stored = sqlite3_column_int(raw, 6) != 0;
    row.applied_at = column_text(raw, 7);
    row.duration_ms = sqlite3_column_double(raw, 8);
    row.applied_by = column_text(raw, 9);
    row.dbstep_version = column_text(raw, 10);
    rows.push_back(std::move(row));
  }
  if (rc != SQLITE_DONE) {
    throw Error(ErrorCode::kDatabase,
                fmt::format("cannot read the history table {}: {}", name_, sqlite3_errmsg(db)));
  }
  return rows;
}

std::optional<std::string> HistoryTable::stored_down(sqlite3* db, Version version) {
  const std::string sql = fmt::format(
      "SELECT down_sql FROM {} WHERE version = ? AND direction = 'up' AND kind <> 'failed' AND "
      "kind <> 'forced' ORDER BY id DESC LIMIT 1",
      quoted_);
  sqlite3_stmt* raw = nullptr;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &raw, nullptr) != SQLITE_OK) {
    sqlite3_finalize(raw);
    return std::nullopt;  // no table: nothing stored
  }
  StatementPtr stmt(raw);
  sqlite3_bind_int64(raw, 1, static_cast<sqlite3_int64>(version));
  if (sqlite3_step(raw) != SQLITE_ROW || sqlite3_column_type(raw, 0) == SQLITE_NULL) {
    return std::nullopt;
  }
  const auto* data = static_cast<const char*>(sqlite3_column_blob(raw, 0));
  return std::string(data ? data : "", static_cast<std::size_t>(sqlite3_column_bytes(raw, 0)));
}

}  // namespace dbstep::drivers::sqlite
