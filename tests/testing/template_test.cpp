// dbstep::testing (testing/): test databases from templates on SQLite and PostgreSQL. Two
// processes asking for a new template at once share one build (each build records a random id in
// its first migration, so copies of one build carry the same id); a changed migration set gets a
// new template and the old one is removed; handles move their database up and down, remove it when
// they go, and say what failed. The migration folders are written per test, so nothing is shared
// with other test processes.
//
// PostgreSQL cases need DBSTEP_TEST_POSTGRES_URL and fail without it.

#include <SQLiteCpp/SQLiteCpp.h>
#include <doctest/doctest.h>
#include <stdio.h>
#include <sys/wait.h>

#include <filesystem>
#include <pqxx/pqxx>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "core/error.hpp"
#include "testing/postgres_test_database.hpp"
#include "testing/sqlite_test_database.hpp"
#include "tests/postgres_server.hpp"
#include "tests/support.hpp"

namespace {

namespace fs = std::filesystem;
using dbstep::Error;
using dbstep::ErrorCode;
using dbstep::testing::MigrationSet;
using dbstep::testing::Options;
using dbstep::testing::postgres_server_url;
using dbstep::testing::PostgresTestDatabase;
using dbstep::testing::SqliteTestDatabase;
using dbstep::testing::TempDir;
using dbstep::testing::write_file;

enum class Dialect { kSqlite, kPostgres };

// Three migrations: 1 records a random build id, 2 is slow (so that two builds started together
// would overlap), 3 adds a table.
void write_set(const fs::path& dir, Dialect dialect) {
  const bool sqlite = dialect == Dialect::kSqlite;
  write_file(
      dir / "1_build.up.sql",
      std::string("CREATE TABLE build_id (id TEXT NOT NULL);\nINSERT INTO build_id VALUES (") +
          (sqlite ? "lower(hex(randomblob(8)))" : "md5(random()::text || clock_timestamp())") +
          ");\n");
  write_file(dir / "1_build.down.sql", "DROP TABLE build_id;\n");
  write_file(dir / "2_slow.up.sql",
             sqlite
                 ? "CREATE TABLE slow AS WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 "
                   "FROM c WHERE x < 1000000) SELECT count(*) AS n FROM c;\n"
                 : "CREATE TABLE slow AS SELECT 1 AS n FROM pg_sleep(0.7);\n");
  write_file(dir / "2_slow.down.sql", "DROP TABLE slow;\n");
  // The folder's name in a comment: each test's set (and so its template) is its own.
  write_file(dir / "3_notes.up.sql",
             "-- " + dir.string() + "\nCREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);\n");
  write_file(dir / "3_notes.down.sql", "DROP TABLE notes;\n");
}

std::string quoted(const std::string& arg) {
  std::string out = "'";
  for (char c : arg) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

struct Run {
  int status = -1;
  std::string out;
};

// Starts every command before reading any, so they run at the same time.
std::vector<Run> run_together(const std::vector<std::string>& commands) {
  std::vector<FILE*> pipes;
  for (const auto& c : commands) pipes.push_back(::popen((c + " 2>&1").c_str(), "r"));
  std::vector<Run> runs;
  for (FILE* p : pipes) {
    REQUIRE(p != nullptr);
    Run r;
    char buf[512];
    while (std::fgets(buf, sizeof buf, p)) r.out += buf;
    int status = ::pclose(p);
    r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    runs.push_back(r);
  }
  return runs;
}

std::vector<std::string> template_files(const fs::path& root) {
  std::vector<std::string> names;
  if (!fs::exists(root)) return names;
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    if (e.path().extension() == ".sqlite") names.push_back(e.path().filename().string());
  }
  return names;
}

std::string sqlite_build_id(SqliteTestDatabase& t) {
  return t.db().execAndGet("SELECT id FROM build_id").getString();
}

std::string pg_build_id(PostgresTestDatabase& t) {
  pqxx::work tx(t.db());
  return tx.exec1("SELECT id FROM build_id")[0].as<std::string>();
}

// The template and ready-copy databases on the server whose names start with the set's
// checksum prefix.
std::vector<std::string> pg_templates_of(const MigrationSet& set) {
  pqxx::connection c(postgres_server_url());
  pqxx::work tx(c);
  std::vector<std::string> names;
  const std::string prefix = set.checksum().substr(0, 12);
  for (const auto& row :
       tx.exec_params("SELECT datname FROM pg_database WHERE datname LIKE $1 OR datname LIKE $2 "
                      "ORDER BY datname",
                      "dbstep\\_tpl\\_" + prefix + "%", "dbstep\\_pool\\_" + prefix + "%")) {
    names.push_back(row[0].as<std::string>());
  }
  return names;
}

bool pg_database_exists(const std::string& name) {
  pqxx::connection c(postgres_server_url());
  pqxx::work tx(c);
  return !tx.exec_params("SELECT 1 FROM pg_database WHERE datname = $1", name).empty();
}

}  // namespace

// --- SQLite -------------------------------------------------------------------------------------

TEST_CASE("testing: two processes asking for a new SQLite template at once share one build") {
  TempDir dir;
  write_set(dir / "migrations", Dialect::kSqlite);
  const std::string command = std::string(DBSTEP_TEMPLATE_PROBE) + " sqlite " +
                              quoted((dir / "migrations").string()) + " " +
                              quoted((dir / "templates").string());
  auto runs = run_together({command, command});
  REQUIRE(runs.size() == 2);
  CHECK_MESSAGE(runs[0].status == 0, runs[0].out);
  CHECK_MESSAGE(runs[1].status == 0, runs[1].out);
  CHECK(runs[0].out.size() == 17);  // 16 hex digits and a newline
  CHECK(runs[0].out == runs[1].out);
  CHECK(template_files(dir / "templates").size() == 1);
}

TEST_CASE("testing: a changed migration set gets a new SQLite template, and the old one goes") {
  TempDir dir;
  write_set(dir / "migrations", Dialect::kSqlite);
  Options options;
  options.template_folder = dir / "templates";
  options.folder = dir.path();

  auto before = MigrationSet::folder(dir / "migrations");
  std::string first_id;
  {
    auto t = SqliteTestDatabase::from_template(before, options);
    first_id = sqlite_build_id(t);
    auto again = SqliteTestDatabase::from_template(before, options);
    CHECK(sqlite_build_id(again) == first_id);  // a copy of the same template
  }
  auto old_files = template_files(dir / "templates");
  REQUIRE(old_files.size() == 1);
  CHECK(old_files[0] == before.checksum().substr(0, 12) + "-v3.sqlite");

  write_file(dir / "migrations" / "3_notes.up.sql",
             "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT, pinned INTEGER);\n");
  auto after = MigrationSet::folder(dir / "migrations");
  CHECK(after.checksum() != before.checksum());
  CHECK(after.origin() == before.origin());

  auto t = SqliteTestDatabase::from_template(after, options);
  CHECK(sqlite_build_id(t) != first_id);
  t.db().exec("INSERT INTO notes (body, pinned) VALUES ('new column', 1)");
  CHECK(template_files(dir / "templates") ==
        std::vector<std::string>{after.checksum().substr(0, 12) + "-v3.sqlite"});

  SqliteTestDatabase::drop_templates(after, options);
  CHECK(template_files(dir / "templates").empty());
}

TEST_CASE(
    "testing: a SQLite test database moves up and down, goes with its handle, names failures") {
  TempDir dir;
  write_set(dir / "migrations", Dialect::kSqlite);
  Options options;
  options.template_folder = dir / "templates";
  options.folder = dir.path();
  auto set = MigrationSet::folder(dir / "migrations");
  CHECK(set.latest() == 3);

  fs::path path;
  {
    auto t = SqliteTestDatabase::from_template(set, 1, options);
    path = t.path();
    CHECK(fs::exists(path));
    CHECK(t.version() == dbstep::OptVersion(1));
    CHECK_FALSE(t.db().tableExists("notes"));
    t.migrate_up();
    CHECK(t.db().tableExists("notes"));
    t.migrate_to(1);
    CHECK_FALSE(t.db().tableExists("slow"));
    t.migrate_down_all();
    CHECK(t.version() == std::nullopt);
    CHECK_FALSE(t.db().tableExists("build_id"));
  }
  CHECK_FALSE(fs::exists(path));
  CHECK_FALSE(fs::exists(path.string() + ".dbstep-lock"));

  // A copy of the template has the schema that migrating from scratch gives.
  auto empty = SqliteTestDatabase::empty(set, options);
  CHECK(empty.version() == std::nullopt);
  empty.migrate_up();
  auto copied = SqliteTestDatabase::from_template(set, options);
  CHECK(copied.schema().find("notes") != std::string::npos);
  CHECK(copied.schema() == empty.schema());

  // A version the set does not have.
  try {
    SqliteTestDatabase::from_template(set, 7, options);
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::kMissingVersion);
    CHECK(std::string(e.what()).find("has no migration 7 (latest: 3)") != std::string::npos);
  }

  // A migration that fails: the error names the test database, the move and the file.
  write_file(dir / "migrations" / "4_broken.up.sql", "CREATE TABLE broken (id INTEGER;\n");
  auto broken = MigrationSet::folder(dir / "migrations");
  auto t = SqliteTestDatabase::from_template(broken, 3, options);
  try {
    t.migrate_to(4);
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::kMigrationFailed);
    CHECK(e.file == "4_broken.up.sql");
    const std::string what = e.what();
    CHECK(what.find("moving the test database " + t.path().string() +
                    " from version 3 to 4 failed (it is now at version 3)") == 0);
  }
  CHECK(t.version() == dbstep::OptVersion(3));
}

TEST_CASE("testing: a SQLite migration-path table runs each row on a database of its own") {
  TempDir dir;
  write_set(dir / "migrations", Dialect::kSqlite);
  Options options;
  options.template_folder = dir / "templates";
  options.folder = dir.path();
  auto set = MigrationSet::folder(dir / "migrations");

  std::vector<std::string> calls;
  SqliteTestDatabase::run_path(
      set,
      {
          {.from = std::nullopt,
           .to = 1,
           .setup_data =
               [&](SQLite::Database& db) {
                 calls.push_back("setup none");
                 CHECK_FALSE(db.tableExists("build_id"));
               },
           .validate_data =
               [&](SQLite::Database& db) {
                 calls.push_back("data 1");
                 CHECK(db.execAndGet("SELECT count(*) FROM build_id").getInt() == 1);
               },
           .validate_schema = [&](SQLite::Database&) { calls.push_back("schema 1"); }},
          {.from = 3,
           .to = 2,
           .setup_data =
               [&](SQLite::Database& db) {
                 calls.push_back("setup 3");
                 db.exec("INSERT INTO notes (body) VALUES ('gone after the rollback')");
               },
           .validate_schema =
               [&](SQLite::Database& db) {
                 calls.push_back("schema 2");
                 CHECK_FALSE(db.tableExists("notes"));
               }},
      },
      options);
  CHECK(calls ==
        std::vector<std::string>{"setup none", "schema 1", "data 1", "setup 3", "schema 2"});

  // A row whose move fails says which row.
  write_file(dir / "migrations" / "4_broken.up.sql", "CREATE TABLE broken (id INTEGER;\n");
  auto broken = MigrationSet::folder(dir / "migrations");
  try {
    SqliteTestDatabase::run_path(broken, {{.from = 3, .to = 4}}, options);
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find("migration path 3 -> 4: moving the test database") == 0);
  }
}

// --- PostgreSQL ---------------------------------------------------------------------------------

TEST_CASE("testing: two processes asking for a new PostgreSQL template at once share one build") {
  TempDir dir;
  write_set(dir / "migrations", Dialect::kPostgres);
  const std::string command = std::string(DBSTEP_TEMPLATE_PROBE) + " postgres " +
                              quoted((dir / "migrations").string()) + " " +
                              quoted(postgres_server_url());
  auto runs = run_together({command, command});
  REQUIRE(runs.size() == 2);
  CHECK_MESSAGE(runs[0].status == 0, runs[0].out);
  CHECK_MESSAGE(runs[1].status == 0, runs[1].out);
  CHECK(runs[0].out.size() == 33);  // an md5 and a newline
  CHECK(runs[0].out == runs[1].out);
  auto set = MigrationSet::folder(dir / "migrations");
  CHECK(pg_templates_of(set) ==
        std::vector<std::string>{"dbstep_tpl_" + set.checksum().substr(0, 12) + "_v3"});
  PostgresTestDatabase::drop_templates(set, postgres_server_url());
  CHECK(pg_templates_of(set).empty());
}

TEST_CASE(
    "testing: a changed migration set gets a new PostgreSQL template, the old one is dropped") {
  TempDir dir;
  write_set(dir / "migrations", Dialect::kPostgres);
  const std::string server = postgres_server_url();
  Options options;
  options.postgres_pool = 1;

  auto before = MigrationSet::folder(dir / "migrations");
  const std::string old_tpl = "dbstep_tpl_" + before.checksum().substr(0, 12) + "_v3";
  std::string first_id;
  std::string first_name;
  {
    auto t = PostgresTestDatabase::from_template(before, server, options);
    first_name = t.name();
    CHECK(pg_database_exists(first_name));
    first_id = pg_build_id(t);
    // The pool's ready copy is taken by the next handle: same build, another database.
    auto again = PostgresTestDatabase::from_template(before, server, options);
    CHECK(again.name() != t.name());
    CHECK(pg_build_id(again) == first_id);
  }
  CHECK_FALSE(pg_database_exists(first_name));  // dropped with its handle
  auto old_names = pg_templates_of(before);
  REQUIRE(old_names.size() == 2);  // the template and one ready copy
  CHECK(old_names[1] == old_tpl);

  write_file(dir / "migrations" / "3_notes.up.sql",
             "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT, pinned BOOLEAN);\n");
  auto after = MigrationSet::folder(dir / "migrations");
  REQUIRE(after.checksum() != before.checksum());
  {
    auto t = PostgresTestDatabase::from_template(after, server, options);
    CHECK(pg_build_id(t) != first_id);
    pqxx::work tx(t.db());
    tx.exec0("INSERT INTO notes (id, body, pinned) VALUES (1, 'new column', true)");
  }
  CHECK(pg_templates_of(before).empty());  // the old template and its copy are gone
  CHECK(pg_templates_of(after).size() == 2);
  PostgresTestDatabase::drop_templates(after, server);
  CHECK(pg_templates_of(after).empty());
}

TEST_CASE("testing: a PostgreSQL test database moves up and down and names failures") {
  TempDir dir;
  write_set(dir / "migrations", Dialect::kPostgres);
  const std::string server = postgres_server_url();
  Options options;
  options.postgres_pool = 0;
  auto set = MigrationSet::folder(dir / "migrations");

  {
    auto t = PostgresTestDatabase::from_template(set, server, 1, options);
    CHECK(t.version() == dbstep::OptVersion(1));
    CHECK(t.url().find("dbname=" + t.name()) != std::string::npos);
    t.migrate_up();
    CHECK(t.version() == dbstep::OptVersion(3));
    t.migrate_down_all();
    CHECK(t.version() == std::nullopt);
  }
  {
    auto t = PostgresTestDatabase::empty(set, server, options);
    CHECK(t.version() == std::nullopt);
    t.migrate_to(3);
    pqxx::work tx(t.db());
    CHECK(tx.exec1("SELECT count(*) FROM build_id")[0].as<int>() == 1);
  }

  write_file(dir / "migrations" / "4_broken.up.sql", "CREATE TABLE broken (id INTEGER;\n");
  auto broken = MigrationSet::folder(dir / "migrations");
  auto t = PostgresTestDatabase::from_template(broken, server, 3, options);
  try {
    t.migrate_to(4);
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::kMigrationFailed);
    CHECK(e.file == "4_broken.up.sql");
    CHECK(e.sqlstate == "42601");
    CHECK(std::string(e.what()).find("moving the test database " + t.name() +
                                     " from version 3 to 4 failed") == 0);
  }
  CHECK(t.version() == dbstep::OptVersion(3));
  PostgresTestDatabase::drop_templates(set, server);
  PostgresTestDatabase::drop_templates(broken, server);
}

TEST_CASE("testing: a PostgreSQL role without CREATEDB gets an error that says so") {
  TempDir dir;
  write_set(dir / "migrations", Dialect::kPostgres);
  const std::string server = postgres_server_url();
  {
    pqxx::connection c(server);
    pqxx::nontransaction tx(c);
    tx.exec0(
        "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'dbstep_nocreatedb') "
        "THEN CREATE ROLE dbstep_nocreatedb LOGIN NOCREATEDB; END IF; END $$");
  }
  const auto at = server.find("postgres@");
  REQUIRE(at != std::string::npos);
  std::string url = server;
  url.replace(at, std::string("postgres@").size(), "dbstep_nocreatedb@");
  auto set = MigrationSet::folder(dir / "migrations");
  try {
    PostgresTestDatabase::empty(set, url);
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::kDatabase);
    CHECK(e.sqlstate == "42501");
    CHECK(std::string(e.what()).find("grant it CREATEDB") != std::string::npos);
  }
}
