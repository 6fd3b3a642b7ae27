#pragma once
// Options shared by dbstep::testing's test databases (testing/sqlite_test_database.hpp,
// testing/postgres_test_database.hpp). The defaults suit a test suite run by ctest -j.

#include <chrono>
#include <filesystem>

namespace dbstep::testing {

struct Options {
  // The longest a test waits for another process: one that is building the template it needs (the
  // first process to ask builds it, the others wait for it), a migration run on the same database,
  // or (PostgreSQL) a session still connected to the template it copies. Past it, an
  // Error(kLockTimeout) says what was waited for.
  std::chrono::milliseconds lock_timeout{120000};
  // SQLite: the folder for test databases (default: the system's temporary folder, $TMPDIR or /tmp)
  // and for templates (default: <temporary folder>/dbstep-templates-<uid>).
  std::filesystem::path folder;
  std::filesystem::path template_folder;
  // PostgreSQL: how many ready copies of each template to keep on the server, so that
  // from_template() renames one (milliseconds) instead of waiting for CREATE DATABASE ... TEMPLATE
  // (which copies the whole database, system catalogs included: a few hundred milliseconds on a
  // busy machine). A handle that goes makes one new copy after dropping its database. 0: none.
  int postgres_pool = 2;
  // Keep the test database when its handle goes (to look at it after a failing test); its name or
  // path is then printed on stderr. Templates are always kept (that is what they are for).
  bool keep = false;
  // Write dbstep's history table (as the application's own runs would). Off: only the version
  // table, as golang-migrate keeps it.
  bool record_history = true;
};

}  // namespace dbstep::testing
