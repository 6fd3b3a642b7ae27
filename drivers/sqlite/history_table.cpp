#include "drivers/sqlite/history_table.hpp"

#include <fmt/format.h>

#include "core/error.hpp"
#include "core/sql_text.hpp"

namespace dbstep::drivers::sqlite {

namespace {

// read()'s columns; read_marks() reads the first four.
constexpr const char* kColumns =
    "id, version, direction, kind, identifier, checksum, down_sql IS NOT NULL, applied_at, "
    "duration_ms, applied_by, dbstep_version";
constexpr const char* kMarkColumns = "id, version, direction, kind";

std::string column_text(sqlite3_stmt* stmt, int i) {
  const auto* t = sqlite3_column_text(stmt, i);
  return t ? reinterpret_cast<const char*>(t) : std::string();
}

// The column's text, valid until the next step.
std::string_view column_view(sqlite3_stmt* stmt, int i) {
  const auto* t = reinterpret_cast<const char*>(sqlite3_column_text(stmt, i));
  return t ? std::string_view(t, static_cast<std::size_t>(sqlite3_column_bytes(stmt, i)))
           : std::string_view();
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

StatementPtr HistoryTable::select(sqlite3* db, const char* columns, unsigned flags) const {
  const std::string sql = fmt::format("SELECT {} FROM {} ORDER BY id", columns, quoted_);
  sqlite3_stmt* raw = nullptr;
  if (sqlite3_prepare_v3(db, sql.c_str(), -1, flags, &raw, nullptr) != SQLITE_OK) {
    sqlite3_finalize(raw);
    const std::string message = sqlite3_errmsg(db);
    if (message.rfind("no such table", 0) == 0) return nullptr;
    throw Error(ErrorCode::kDatabase,
                fmt::format("the table {} is not dbstep's history table ({}); rename it, or name "
                            "another history table with x-history-table",
                            name_, message));
  }
  return StatementPtr(raw);
}

HistoryMark HistoryTable::mark_of(sqlite3_stmt* stmt) const {
  // Columns 0-3: id, version, direction, kind.
  HistoryMark mark;
  mark.id = sqlite3_column_int64(stmt, 0);
  const sqlite3_int64 version = sqlite3_column_int64(stmt, 1);
  auto bad = [&](std::string_view what) {
    return Error(ErrorCode::kDatabase,
                 fmt::format("the history table {} has a row dbstep cannot read (id {}): {}; it "
                             "was edited by hand or written by another tool",
                             name_, mark.id, what));
  };
  if (version < 0) throw bad(fmt::format("version {}", version));
  mark.version = static_cast<Version>(version);
  const std::string_view direction = column_view(stmt, 2);
  const auto d = parse_direction(direction);
  if (!d) throw bad(fmt::format("direction \"{}\"", direction));
  mark.direction = *d;
  const std::string_view kind = column_view(stmt, 3);
  const auto k = parse_history_kind(kind);
  if (!k) throw bad(fmt::format("kind \"{}\"", kind));
  mark.kind = *k;
  return mark;
}

void HistoryTable::check_done(sqlite3* db, int rc) const {
  if (rc != SQLITE_DONE) {
    throw Error(ErrorCode::kDatabase,
                fmt::format("cannot read the history table {}: {}", name_, sqlite3_errmsg(db)));
  }
}

std::optional<std::vector<HistoryRow>> HistoryTable::read(sqlite3* db) {
  StatementPtr stmt = select(db, kColumns);
  if (!stmt) return std::nullopt;
  sqlite3_stmt* raw = stmt.get();
  std::vector<HistoryRow> rows;
  int rc;
  while ((rc = sqlite3_step(raw)) == SQLITE_ROW) {
    const HistoryMark mark = mark_of(raw);
    HistoryRow row;
    row.id = mark.id;
    row.version = mark.version;
    row.direction = mark.direction;
    row.kind = mark.kind;
    row.identifier = column_text(raw, 4);
    if (sqlite3_column_type(raw, 5) != SQLITE_NULL) row.checksum = column_text(raw, 5);
    row.down_stored = sqlite3_column_int(raw, 6) != 0;
    row.applied_at = column_text(raw, 7);
    row.duration_ms = sqlite3_column_double(raw, 8);
    row.applied_by = column_text(raw, 9);
    row.dbstep_version = column_text(raw, 10);
    rows.push_back(std::move(row));
  }
  check_done(db, rc);
  return rows;
}

std::optional<std::vector<HistoryMark>> HistoryTable::read_marks(sqlite3* db) {
  // Prepared once per connection (every run going up reads this; SQLite prepares it again by
  // itself after a schema change), and only the four columns: naming the others too makes SQLite
  // compute them for every row (a table of another shape that has these four is reported by the
  // next read() or write).
  if (!marks_) {
    marks_ = select(db, kMarkColumns, SQLITE_PREPARE_PERSISTENT);
    if (!marks_) return std::nullopt;
  }
  sqlite3_stmt* stmt = marks_.get();
  std::vector<HistoryMark> marks;
  int rc;
  try {
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) marks.push_back(mark_of(stmt));
  } catch (...) {
    sqlite3_reset(stmt);
    throw;
  }
  sqlite3_reset(stmt);  // a statement left active would hold its read
  if (rc != SQLITE_DONE) {
    const std::string message = sqlite3_errmsg(db);
    marks_.reset();
    if (message.rfind("no such table", 0) == 0) return std::nullopt;  // dropped since
    check_done(db, rc);
  }
  return marks;
}

std::map<Version, std::string> HistoryTable::stored_downs(sqlite3* db,
                                                         const std::vector<Version>& versions) {
  std::map<Version, std::string> found;
  if (versions.empty()) return found;
  // Every up row of the versions, oldest first: the latest one's down SQL (or its absence)
  // is what counts.
  std::string in(versions.size() * 2 - 1, '?');
  for (std::size_t k = 1; k < in.size(); k += 2) in[k] = ',';
  const std::string sql = fmt::format(
      "SELECT version, down_sql FROM {} WHERE version IN ({}) AND direction = 'up' AND "
      "kind <> 'failed' AND kind <> 'forced' ORDER BY id",
      quoted_, in);
  sqlite3_stmt* raw = nullptr;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &raw, nullptr) != SQLITE_OK) {
    sqlite3_finalize(raw);
    return found;  // no table: nothing stored
  }
  StatementPtr stmt(raw);
  int param = 1;
  for (Version v : versions) sqlite3_bind_int64(raw, param++, static_cast<sqlite3_int64>(v));
  int rc;
  while ((rc = sqlite3_step(raw)) == SQLITE_ROW) {
    const auto version = static_cast<Version>(sqlite3_column_int64(raw, 0));
    if (sqlite3_column_type(raw, 1) == SQLITE_NULL) {
      found.erase(version);
      continue;
    }
    const auto* data = static_cast<const char*>(sqlite3_column_blob(raw, 1));
    found[version].assign(data ? data : "", static_cast<std::size_t>(sqlite3_column_bytes(raw, 1)));
  }
  if (rc != SQLITE_DONE) {
    throw Error(ErrorCode::kDatabase, fmt::format("cannot read the stored down SQL from {}: {}",
                                                  name_, sqlite3_errmsg(db)));
  }
  return found;
}

}  // namespace dbstep::drivers::sqlite
