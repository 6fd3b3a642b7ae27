#pragma once
// What a sqlite:// (or sqlite3://) URL asks of the connection: the file, the name and flags
// SQLite opens it with, the PRAGMAs to run after opening, the busy timeout, and dbstep's own x-
// parameters (version and history table names, x-no-tx-wrap). Pure: reads the URL, opens
// nothing.
//
// The file is the URL's path; `file:u.db` (golang-migrate hands sqlite3://file:u.db to SQLite as
// a URI) names the file u.db, so the lock file, existence checks, backup and messages use u.db
// and `file:u.db` shares `u.db`'s lock. go-sqlite3's `_` parameters become PRAGMAs; any other
// non-x- parameter goes to SQLite as a URI query parameter (the database is then opened as a
// URI, and treated as not a plain file). Unknown x- parameters belong to other tools: ignored.

#include <string>
#include <utility>
#include <vector>

#include "core/url.hpp"

namespace dbstep::drivers::sqlite {

struct ConnectionOptions {
  std::string path;      // the database file (or ":memory:")
  std::string filename;  // what SQLite opens: path, or a file: URI with the query parameters
  int flags = 0;         // SQLite::OPEN_* flags
  bool memory = false;   // not a plain file on disk (":memory:" or a URI with parameters)
  std::vector<std::string> pragmas;  // run after opening, in the URL's order
  int busy_ms = 15000;
  bool busy_from_url = false;  // _busy_timeout in the URL wins over the lock timeout
  bool no_tx_wrap = false;     // x-no-tx-wrap
  std::string version_table = "schema_migrations";  // as written: "mig" or "main.mig"
  std::string history_table;  // x-history-table as written; empty: derived from the version table
  // The x- and _ parameters, for a scratch database opened like this one (verify).
  std::vector<std::pair<std::string, std::string>> scratch_params;
};

// Throws Error(kInvalidArgument) naming the URL (redacted) or the parameter for a URL with no
// file, a host other than localhost in a file: URI, an empty x-migrations-table or
// x-history-table, or a bad _journal_mode, _synchronous, _busy_timeout or boolean value.
ConnectionOptions parse_connection_options(const Url& url);

}  // namespace dbstep::drivers::sqlite
