#include "drivers/sqlite/drop.hpp"

#include <fmt/format.h>

#include <string>
#include <utility>
#include <vector>

#include "core/sql_text.hpp"
#include "drivers/sqlite/driver_sql.hpp"

namespace dbstep::drivers::sqlite {

void drop_everything(sqlite3* db, std::string_view database, int busy_ms) {
  const bool foreign_keys = foreign_keys_on(db);
  if (foreign_keys)
    exec(db, "PRAGMA foreign_keys = OFF", "cannot switch off foreign keys", database);
  try {
    begin_immediate(db, database, busy_ms);
  } catch (...) {
    // No write lock, nothing dropped: the connection keeps its foreign keys as they were.
    if (foreign_keys) sqlite3_exec(db, "PRAGMA foreign_keys = ON", nullptr, nullptr, nullptr);
    throw;
  }
  try {
    std::vector<std::pair<std::string, std::string>> objects;  // (type, name)
    sqlite3_stmt* stmt = nullptr;
    // Views first (they may name tables); indexes and triggers go with their
    // tables. SQLite's own tables (sqlite_sequence, sqlite_stat1 ...) cannot be
    // dropped and are skipped.
    const char* sql =
        "SELECT type, name FROM sqlite_master WHERE type IN ('view', 'table') "
        "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY type = 'table', "
        "name";
    if (sqlite3_prepare_v2(db, sql, -1, &stmt, nullptr) != SQLITE_OK) {
      throw database_error(db, "cannot list the schema", database);
    }
    while (sqlite3_step(stmt) == SQLITE_ROW) {
      objects.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0)),
                           reinterpret_cast<const char*>(sqlite3_column_text(stmt, 1)));
    }
    sqlite3_finalize(stmt);
    for (const auto& [type, name] : objects) {
      exec(db,
           fmt::format("DROP {} IF EXISTS {}", type == "view" ? "VIEW" : "TABLE",
                       quote_identifier(name)),
           fmt::format("cannot drop {} {}", type, name), database);
    }
    exec(db, "COMMIT", "cannot commit the drop", database);
  } catch (...) {
    rollback_quietly(db);
    if (foreign_keys) sqlite3_exec(db, "PRAGMA foreign_keys = ON", nullptr, nullptr, nullptr);
    throw;
  }
  if (foreign_keys)
    exec(db, "PRAGMA foreign_keys = ON", "cannot switch foreign keys back on", database);
  exec(db, "VACUUM", "cannot vacuum after dropping", database);
}

}  // namespace dbstep::drivers::sqlite
