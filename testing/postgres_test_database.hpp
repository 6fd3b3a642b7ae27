#pragma once
// PostgresTestDatabase: a throwaway PostgreSQL database for one test, created on a server the
// caller names (for example from an environment variable such as DBSTEP_TEST_POSTGRES_URL) and
// dropped when the handle goes. The test works on it through libpqxx (db(), a pqxx::connection) and
// moves it between versions of a MigrationSet through dbstep (migrate_to()):
//
//   auto t = dbstep::testing::PostgresTestDatabase::from_template(set,
//   server_url, 5); pqxx::work(t.db()).exec0("INSERT INTO channels ...")...
//   t.migrate_to(6);
//
// `server_url` is a postgres:// URL (or a libpq key=value string after "postgres:") of any database
// on the server, "postgres" usually, whose role may CREATE DATABASE: the handle connects there to
// create and drop test databases. Its x- parameters are passed to dbstep's driver; the others must
// be libpq keywords (sslmode, connect_timeout ...).
//
// from_template() hands out a database at a version in a few milliseconds with CREATE DATABASE ...
// TEMPLATE from a template database migrated once per (set checksum, version) and named
// dbstep_tpl_<checksum12>_v<version>, so two test runs with different sets never share one. Several
// processes asking at once are safe: the first builds the template under an advisory lock
// (pg_try_advisory_lock(1684173684, <key of the template name>)) while the others wait, bounded by
// Options::lock_timeout; a template is marked IS_TEMPLATE (and closed to connections) only once
// migrated, so it is never copied half built; a copy refused because a session is connected to the
// template (SQLSTATE 55006) is tried again until the same timeout. Building a template drops the
// templates of the same origin with another checksum (their comment names the origin).
//
// Test databases are named dbstep_test_<pid>_<n>_<random>. A process that dies leaves its test
// database behind (the templates stay by design); drop them with `SELECT 'DROP DATABASE ' ||
// datname FROM pg_database WHERE datname LIKE 'dbstep\_test\_%'`.
//
// Needs the target dbstep::testing_postgres (libpqxx). A handle is movable, not copyable, and used
// from one thread at a time. Everything throws dbstep::Error; a failed move says which migration
// failed and where the database stands.

#include <memory>
#include <pqxx/connection>
#include <string>
#include <string_view>

#include "core/migrator.hpp"
#include "testing/migration_path.hpp"
#include "testing/migration_set.hpp"
#include "testing/options.hpp"

namespace dbstep::testing {

using PostgresPathStep = PathStep<pqxx::connection>;  // testing/migration_path.hpp

class PostgresTestDatabase {
 public:
  using Connection = pqxx::connection;

  // An empty database (CREATE DATABASE with the server's default template).
  static PostgresTestDatabase empty(const MigrationSet& set, std::string_view server_url,
                                    const Options& options = {});
  // A database at the set's latest version, or at `version`, copied from the set's template
  // database (built on first use). Throws Error(kMissingVersion) when `version` is not in the set.
  static PostgresTestDatabase from_template(const MigrationSet& set, std::string_view server_url,
                                            const Options& options = {});
  static PostgresTestDatabase from_template(const MigrationSet& set, std::string_view server_url,
                                            Version version, const Options& options = {});

  // The name of the template database for (set, version), building it first when it is missing.
  static std::string template_database(const MigrationSet& set, std::string_view server_url,
                                       Version version, const Options& options = {});

  // Runs a migration-path table (testing/migration_path.hpp): each row on a database of its own
  // from the template at its `from` (empty() when none).
  static void run_path(const MigrationSet& set, std::string_view server_url,
                       const std::vector<PathStep<pqxx::connection>>& steps,
                       const Options& options = {});

  // Drops every template of the set's origin (whatever their checksum) and their ready copies,
  // for a suite that cleans up after itself. Waits for a build in progress.
  static void drop_templates(const MigrationSet& set, std::string_view server_url,
                             const Options& options = {});

  PostgresTestDatabase(PostgresTestDatabase&&) noexcept;
  PostgresTestDatabase& operator=(PostgresTestDatabase&&) noexcept;
  // Closes the connections and drops the database (WITH (FORCE)), unless Options::keep. Never
  // throws: a failure to drop is printed on stderr.
  ~PostgresTestDatabase();

  // The test's connection (libpqxx), opened on first use.
  pqxx::connection& db();

  // Moves the database up or down to exactly `version` with dbstep, on dbstep's own connection.
  // Throws the failure as Error (testing/move.hpp). Leave no transaction open on db() across it.
  void migrate_to(Version version);
  void migrate_up();        // to the set's latest version
  void migrate_down_all();  // every migration rolled back (version none)
  OptVersion version();     // the stored version (none for a new database)

  // The database's schema as dbstep's snapshot text (Driver::schema_snapshot(), the text `dbstep
  // schema dump` prints), for validate_schema checks that compare whole schemas.
  std::string schema();

  // The dbstep Migrator over this database and the set, for anything else.
  Migrator& migrator();

  const std::string& name() const;  // the database's name
  // The URL of the test database: server_url with dbname=NAME (for dbstep, psql, the app).
  const std::string& url() const;

 private:
  struct Impl;
  explicit PostgresTestDatabase(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace dbstep::testing
