#pragma once
// The SQLite driver's schema snapshot (Driver::schema_snapshot, core/schema_snapshot.hpp), and
// the scratch databases `verify` runs on (temporary files).
//
// The snapshot lists, from sqlite_master, every table (with its SQL, whitespace normalised, and
// what PRAGMA table_xinfo, index_list/index_xinfo and foreign_key_list say of it), its indexes
// and triggers, then every view; sorted by name, so the text does not depend on the order the
// objects were made in. SQLite's own tables (sqlite_sequence, sqlite_stat1 ...) and the tables
// named in `own` (dbstep's version and history tables), with their indexes and triggers, are
// left out. Read-only.

#include <string>
#include <utility>
#include <vector>

namespace SQLite {
class Database;
}

namespace dbstep::drivers::sqlite {

std::string schema_snapshot(SQLite::Database& db, const std::vector<std::string>& own);

// SQL text with whitespace outside quotes made canonical: one space after a comma, none after
// '(' or before ( ) , ;, elsewhere one space where the text had any (so
// "CREATE TABLE t (\n  a INT ,b)" reads "CREATE TABLE t(a INT, b)").
std::string normalise_sql(std::string_view sql);

// The URL of the scratch database `name` in the system's temporary folder, carrying
// `params` (the x- and go-sqlite3 `_` parameters of the database it is a scratch for).
std::string scratch_url(const std::string& name,
                        const std::vector<std::pair<std::string, std::string>>& params);
// Removes the scratch database `name` and the files SQLite and dbstep keep beside it.
void remove_scratch(const std::string& name);

}  // namespace dbstep::drivers::sqlite
