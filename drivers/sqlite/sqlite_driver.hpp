#pragma once
// The SQLite driver. URLs: sqlite://PATH and golang-migrate's sqlite3://PATH, relative
// (sqlite://app.db, sqlite://./data/app.db) or absolute (sqlite:///var/lib/app.db).
// Parameters:
//   x-migrations-table=NAME  the version table (default schema_migrations)
//   x-no-tx-wrap=BOOL        golang-migrate's switch: run every migration outside a transaction
//   _foreign_keys/_fk, _journal_mode/_journal, _busy_timeout/_timeout, _synchronous/_sync
//                            go-sqlite3's connection settings, applied as PRAGMAs
//   any other key            passed to SQLite as a URI parameter (mode=ro, cache=shared, vfs=...)
//   other x- keys            ignored
// The class lives in sqlite_driver_impl.hpp, internal to this folder; SQLiteCpp never appears in
// this header.

#include <memory>

#include "core/driver.hpp"
#include "core/url.hpp"

namespace dbstep::drivers {

// Opens (creating if needed) the database file the URL names. Throws Error(kInvalidArgument) for
// a bad parameter and Error(kDatabase) naming the file when SQLite cannot open it.
std::unique_ptr<Driver> open_sqlite(const Url& url);

}  // namespace dbstep::drivers
