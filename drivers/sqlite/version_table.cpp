#include "drivers/sqlite/version_table.hpp"

#include <fmt/format.h>

#include <cstdint>
#include <limits>
#include <string_view>

#include "core/error.hpp"
#include "core/sql_text.hpp"
#include "drivers/sqlite/driver_sql.hpp"

namespace dbstep::drivers::sqlite {

VersionTable::VersionTable(const TableName& table, std::string database)
    : table_(table.table), quoted_table_(table.quoted()), database_(std::move(database)) {
  // CREATE INDEX names the schema on the index, never on the table.
  quoted_index_ =
      table.sibling(table_ == "schema_migrations" ? "version_unique" : table_ + "_version_unique")
          .quoted();
  select_.set_sql(fmt::format("SELECT version, dirty FROM {} LIMIT 1", quoted_table_));
  delete_.set_sql(fmt::format("DELETE FROM {}", quoted_table_));
  insert_.set_sql(fmt::format("INSERT INTO {} (version, dirty) VALUES (?, ?)", quoted_table_));
}

void VersionTable::ensure(sqlite3* db) {
  if (ready_) return;
  exec(db, fmt::format("CREATE TABLE IF NOT EXISTS {} (version uint64, dirty bool)", quoted_table_),
       "cannot create the version table " + table_, database_);
  exec(db,
       fmt::format("CREATE UNIQUE INDEX IF NOT EXISTS {} ON {} (version)", quoted_index_,
                   quote_identifier(table_)),
       "cannot create the version table's index", database_);
  ready_ = true;
}

DbState VersionTable::read(sqlite3* db) {
  // No table is no version. SQLite says so when preparing, or when stepping if
  // the table was dropped after the statement was prepared (by this connection
  // or another).
  auto no_table = [db] {
    return std::string_view(sqlite3_errmsg(db)).rfind("no such table", 0) == 0;
  };
  sqlite3_stmt* stmt = select_.get(db);
  if (!stmt) {
    if (no_table()) {
      ready_ = false;
      return DbState{};
    }
    throw database_error(db, "cannot read the version table " + table_, database_);
  }
  ResetAfterUse reset(select_);
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
      ready_ = false;
      return DbState{};
    }
    throw database_error(db, "cannot read the version table " + table_, database_);
  }
  return state;
}

void VersionTable::write(sqlite3* db, const DbState& state) {
  if (state.version &&
      *state.version > static_cast<Version>(std::numeric_limits<std::int64_t>::max())) {
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("version {} is larger than SQLite's largest integer", *state.version));
  }
  auto run = [&](CachedStatement& statement, auto&& bind) {
    sqlite3_stmt* stmt = statement.get(db);
    if (!stmt) throw database_error(db, "cannot update the version table " + table_, database_);
    ResetAfterUse reset(statement);
    bind(stmt);
    if (sqlite3_step(stmt) != SQLITE_DONE) {
      throw database_error(db, "cannot update the version table " + table_, database_);
    }
  };
  run(delete_, [](sqlite3_stmt*) {});
  // golang-migrate stores (-1, dirty) as a row and (-1, clean) as no row.
  if (state.version || state.dirty) {
    std::int64_t v = state.version ? static_cast<std::int64_t>(*state.version) : -1;
    run(insert_, [&](sqlite3_stmt* stmt) {
      sqlite3_bind_int64(stmt, 1, v);
      sqlite3_bind_int(stmt, 2, state.dirty ? 1 : 0);
    });
  }
}

}  // namespace dbstep::drivers::sqlite
