#pragma once
// Driver::backup on SQLite: an online copy of the whole database, made before a
// run with
// --backup, to a new file beside it, <db>.backup-v<V>-<UTC time>
// (app.db.backup-v3-20261201-131500; vnone before the first migration).
// SQLite's backup API copies every page in one step, so the copy is one
// consistent moment; another connection writing is waited for up to the busy
// timeout. An existing file of that name (another backup this second) is never
// overwritten, and a copy that fails is removed. Used from the driver's thread,
// on its connection.

#include <optional>
#include <string>
#include <string_view>

#include "core/driver.hpp"

namespace SQLite {
class Database;
}  // namespace SQLite

namespace dbstep::drivers::sqlite {

// Copies `db` (the connection to the file `path`, described as `database` in
// messages) at `state`, waiting at most `busy_ms` for other writers. Returns
// the copy's path, or nullopt when the database holds not a single table, index
// or view (nothing to lose); a database it cannot read (locked past the busy
// timeout) is an error, never "nothing to lose". Throws Error(kDatabase) naming
// the database and the copy ("...; no migration was run").
std::optional<std::string> back_up(SQLite::Database& db, const std::string& path,
                                   std::string_view database, const DbState& state, int busy_ms);

}  // namespace dbstep::drivers::sqlite
