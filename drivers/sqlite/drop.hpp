#pragma once
// `drop` on SQLite: everything dbstep can reach in the database, its views and
// tables (indexes and triggers go with their tables; the version and history
// tables too), in one transaction, then VACUUM to give the space back. SQLite's
// own tables (sqlite_sequence, sqlite_stat1 ...) cannot be dropped and stay.
// Foreign keys would make dropping a parent table fail (or cascade row by row),
// and the pragma cannot change inside a transaction: when they are on, they are
// switched off before the transaction and back on after it, whether the drop
// worked or not, the write lock included.
//
// The caller finalizes its prepared statements of the version and history
// tables first: the tables are gone, and the statements are prepared again once
// they are back. (Prepared statements that are reset hold nothing that would
// keep VACUUM from running.)

#include <sqlite3.h>

#include <string_view>

namespace dbstep::drivers::sqlite {

// `database` as the driver describes it, for messages; `busy_ms` its busy
// timeout. Throws Error(kLockTimeout) when another connection kept the write
// lock, Error(kDatabase) naming what could not be listed or dropped; nothing is
// then dropped.
void drop_everything(sqlite3* db, std::string_view database, int busy_ms);

}  // namespace dbstep::drivers::sqlite
