#pragma once
// SqliteTestDatabase: a throwaway SQLite database for one test, in a file of its own that is
// removed when the handle goes. The test works on it through SQLiteCpp (db()) and moves it between
// versions of a MigrationSet through dbstep (migrate_to()), so a migration-path test reads:
//
//   auto set = dbstep::testing::MigrationSet::folder("migrations");
//   auto t = dbstep::testing::SqliteTestDatabase::from_template(set, 5);  // at version 5
//   t.db().exec("INSERT INTO channels (id, name, topic) VALUES (1, 'general', 'hello')");
//   t.migrate_to(6);
//   CHECK(t.db().execAndGet("SELECT topic FROM channel_topics").getString() == "hello");
//
// from_template() hands out a database at a version in about a millisecond: the first call for a
// (set checksum, version) migrates a template file once (in Options::template_folder, named
// <checksum12>-v<version>.sqlite in a folder per set origin) and every call copies it. Several
// processes asking at once are safe: one builds the template under a flock()ed lock file while the
// others wait (Options::lock_timeout), and a template is published by an atomic rename, so it is
// never seen half built. Building a template removes the templates of the same origin with another
// checksum (the set changed since).
//
// A handle is movable, not copyable, and used from one thread at a time. Everything throws
// dbstep::Error; a failed move says which migration failed and where the database stands.

#include <SQLiteCpp/Database.h>

#include <filesystem>
#include <memory>
#include <string>

#include "core/migrator.hpp"
#include "testing/migration_path.hpp"
#include "testing/migration_set.hpp"
#include "testing/options.hpp"

namespace dbstep::testing {

using SqlitePathStep = PathStep<SQLite::Database>;  // testing/migration_path.hpp

class SqliteTestDatabase {
 public:
  using Connection = SQLite::Database;

  // An empty database (no version table, no version) in a new file.
  static SqliteTestDatabase empty(const MigrationSet& set, const Options& options = {});
  // A database at the set's latest version, or at `version`, copied from the set's template (built
  // on first use). Throws Error(kMissingVersion) when `version` is not in the set.
  static SqliteTestDatabase from_template(const MigrationSet& set, const Options& options = {});
  static SqliteTestDatabase from_template(const MigrationSet& set, Version version,
                                          const Options& options = {});

  // The path of the template file for (set, version), building it first when it is missing.
  // from_template() copies this file; a test may also open it read-only. Never write to it.
  static std::filesystem::path template_file(const MigrationSet& set, Version version,
                                             const Options& options = {});

  // Runs a migration-path table (testing/migration_path.hpp): each row on a database of its own
  // from the template at its `from` (empty() when none).
  static void run_path(const MigrationSet& set,
                       const std::vector<PathStep<SQLite::Database>>& steps,
                       const Options& options = {});

  // Removes every template of the set's origin (whatever their checksum), for a suite that
  // cleans up after itself. Waits for a build in progress.
  static void drop_templates(const MigrationSet& set, const Options& options = {});

  SqliteTestDatabase(SqliteTestDatabase&&) noexcept;
  SqliteTestDatabase& operator=(SqliteTestDatabase&&) noexcept;
  ~SqliteTestDatabase();  // closes the connections and removes the file (unless
                          // Options::keep)

  // The test's connection (SQLiteCpp), opened read-write with a 5 s busy timeout.
  SQLite::Database& db();

  // Moves the database up or down to exactly `version` with dbstep, on dbstep's own connection.
  // Throws the failure as Error (testing/move.hpp). Leave no transaction open on db() across it.
  void migrate_to(Version version);
  // Moves it to the set's latest version.
  void migrate_up();
  // Rolls every migration back (version none).
  void migrate_down_all();
  // The stored version (none for a new database).
  OptVersion version();

  // The database's schema as dbstep's snapshot text (Driver::schema_snapshot(), the text `dbstep
  // schema dump` prints), for validate_schema checks that compare whole schemas.
  std::string schema();

  // The dbstep Migrator over this database and the set, for anything else (status(), steps()).
  Migrator& migrator();

  const std::filesystem::path& path() const;
  std::string url() const;  // sqlite://PATH, for dbstep or another client

 private:
  struct Impl;
  explicit SqliteTestDatabase(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace dbstep::testing
