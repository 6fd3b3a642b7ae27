// End-to-end: the built `dbstep` binary against the real PostgreSQL server the test script
// starts (DBSTEP_TEST_POSTGRES_URL; without it these tests fail, never skip). Each case uses a
// database of its own.

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <filesystem>
#include <random>
#include <set>
#include <string>

#include "tests/e2e/run.hpp"
#include "tests/postgres_server.hpp"
#include "tests/support.hpp"

using namespace dbstep::testing;

namespace {

// A database of its own for one test case, dropped at the end.
struct TestDatabase {
  std::string name;
  std::string url;
  TestDatabase() {
    std::random_device rd;
    name = fmt::format("e2e_{:08x}", rd());
    pg_exec(postgres_server_url(), "CREATE DATABASE " + name);
    url = url_with_database(postgres_server_url(), name);
  }
  ~TestDatabase() {
    try {
      pg_exec(postgres_server_url(), "DROP DATABASE IF EXISTS " + name + " WITH (FORCE)");
    } catch (...) {
    }
  }
  std::string scalar(const std::string& sql) const { return pg_scalar(url, sql); }
  std::set<std::string> tables() const {
    std::set<std::string> out;
    for (const auto& row :
         PgConnection(url).query("SELECT table_name FROM information_schema.tables "
                                 "WHERE table_schema = 'public'")) {
      out.insert(row[0]);
    }
    return out;
  }
};

}  // namespace

TEST_CASE("e2e postgres: migrate all, rollback N, goto, version, drop") {
  TempDir tmp;
  TestDatabase db;
  auto r = run_dbstep({"-d", db.url, "-s", "embedded://", "migrate", "all"}, tmp.path());
  CHECK(r.code == 0);
  CHECK(contains(r.out, "Running 6 pending migration(s) from version none to 6"));
  CHECK(r.err.empty());
  CHECK(db.tables() == std::set<std::string>{"users", "channels", "channel_members", "messages",
                                             "reactions", "channel_topics", "schema_migrations",
                                             "schema_migrations_history"});
  CHECK(run_dbstep({"-d", db.url, "-s", "embedded://", "version"}, tmp.path()).out == "6\n");
  // The driver is a module, loaded on demand (drivers/postgres/module.hpp), libpqxx and libpq
  // with it: here they are.
  {
    const auto loaded = run_dbstep({"-d", db.url, "-s", "embedded://", "version"}, tmp.path(), {{"LD_DEBUG", "libs"}}).err;
    CHECK(contains(loaded, "dbstep-postgres.so"));
    CHECK(contains(loaded, "libpqxx-6.4.so"));
    CHECK(contains(loaded, "libpq.so.5"));
  }
  r = run_dbstep({"-d", db.url, "-s", "embedded://", "migrate", "all"}, tmp.path());
  CHECK(r.code == 0);
  CHECK(contains(r.out, "Database is up to date (version 6)"));
  r = run_dbstep({"-d", db.url, "-s", "embedded://", "rollback", "2"}, tmp.path());
  CHECK(r.code == 0);
  CHECK(db.scalar("SELECT version FROM schema_migrations") == "4");
  r = run_dbstep({"-d", db.url, "-s", "embedded://", "goto", "1"}, tmp.path());
  CHECK(r.code == 0);
  CHECK(db.tables() ==
        std::set<std::string>{"users", "schema_migrations", "schema_migrations_history"});
  r = run_dbstep({"-d", db.url, "-s", "embedded://", "goto", "6"}, tmp.path());
  CHECK(r.code == 0);
  r = run_dbstep({"-d", db.url, "-s", "embedded://", "rollback", "all", "--yes"}, tmp.path());
  CHECK(r.code == 0);
  CHECK(db.tables() == std::set<std::string>{"schema_migrations", "schema_migrations_history"});
  // Every step left its row: 6 up, 2 down, 3 down (goto 1), 5 up (goto 6), 6 down.
  CHECK(db.scalar("SELECT count(*) FROM schema_migrations_history WHERE kind = 'applied'") == "22");
  CHECK(contains(run_dbstep({"-d", db.url, "-s", "embedded://", "version"}, tmp.path()).out, "none"));
  CHECK(run_dbstep({"-d", db.url, "-s", "embedded://", "migrate", "3"}, tmp.path()).code == 0);
  db.scalar("CREATE VIEW v AS SELECT 1 AS x; CREATE TYPE mood AS ENUM ('ok'); CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'");
  r = run_dbstep({"-d", db.url, "-s", "embedded://", "drop", "--yes"}, tmp.path());
  CHECK(r.code == 0);
  CHECK(db.tables().empty());
  CHECK(db.scalar("SELECT COUNT(*) FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE n.nspname = 'public' AND t.typname = 'mood'") == "0");
  CHECK(db.scalar("SELECT COUNT(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public'") == "0");
}

TEST_CASE(
    "e2e postgres: a failing statement rolls back its migration, and the password is never shown") {
  TempDir tmp;
  TestDatabase db;
  auto dir = tmp / "m";
  write_file(dir / "1_a.up.sql", "CREATE TABLE a (x int);\n");
  write_file(dir / "2_b.up.sql", "CREATE TABLE b (x int);\nINSERT INTO b VALUES (1);\nINSERT INTO b VALUES ('not a number');\n");
  auto r = run_dbstep({"-d", db.url, "-s", dir.string(), "migrate", "all"}, tmp.path());
  CHECK(r.code == 1);
  CHECK(contains(r.err, "migration 2 (2_b.up.sql) failed at line 3"));
  CHECK(contains(r.err, "the database is still at version 1"));
  CHECK(db.tables() ==
        std::set<std::string>{"a", "schema_migrations", "schema_migrations_history"});
  CHECK(db.scalar("SELECT string_agg(version::text, ',') FROM schema_migrations_history") == "1");

  // A URL with a password the server will not get to check (closed port): never echoed.
  r = run_dbstep({"-d", "postgres://alice:hunter2secret@127.0.0.1:1/nowhere?connect_timeout=2", "-s", "embedded://", "version"}, tmp.path());
  CHECK(r.code == 1);
  CHECK_FALSE(contains(r.err, "hunter2secret"));
  CHECK_FALSE(contains(r.out, "hunter2secret"));
}

TEST_CASE("e2e postgres: a second dbstep waits for the lock and gives up after --lock-timeout") {
  TempDir tmp;
  TestDatabase db;
  auto dir = tmp / "m";
  write_file(dir / "1_slow.up.sql", "SELECT pg_sleep(3);\nCREATE TABLE slow (x int);\n");
  Process first({"-d", db.url, "-s", dir.string(), "migrate", "all"}, tmp.path());
  first.wait_for_output("Running 1");
  auto second = run_dbstep({"-d", db.url, "-s", dir.string(), "--lock-timeout", "0.5", "migrate", "all"}, tmp.path());
  CHECK(second.code == 1);
  CHECK(contains(second.err, "lock"));
  auto r = first.wait();
  CHECK(r.code == 0);
  CHECK(db.scalar("SELECT version FROM schema_migrations") == "1");
}

TEST_CASE("e2e postgres: a waiting dbstep does not deadlock the holder's CREATE INDEX CONCURRENTLY") {
  TempDir tmp;
  TestDatabase db;
  auto dir = tmp / "m";
  write_file(dir / "1_a.up.sql", "CREATE TABLE big (x int);\nSELECT pg_sleep(1.5);\n");
  write_file(dir / "2_b.up.sql", "CREATE INDEX CONCURRENTLY big_x ON big (x);\n");
  Process first({"-d", db.url, "-s", dir.string(), "migrate", "all"}, tmp.path());
  first.wait_for_output("Running 2");
  auto second = run_dbstep({"-d", db.url, "-s", dir.string(), "migrate", "all"}, tmp.path());
  auto r = first.wait();
  CHECK(r.code == 0);
  CHECK(r.err.empty());
  CHECK(second.code == 0);
  CHECK(second.err.empty());
  CHECK(db.scalar("SELECT version::text || ' ' || dirty::text FROM schema_migrations") == "2 false");
  CHECK(db.scalar("SELECT COUNT(*) FROM pg_indexes WHERE indexname = 'big_x'") == "1");
}

TEST_CASE("e2e postgres: a very long failing statement is reported promptly") {
  TempDir tmp;
  TestDatabase db;
  auto dir = tmp / "m";
  write_file(dir / "1_long.up.sql", "INSERT INTO nope VALUES ('" + std::string(1000000, 'a') + "');\n");
  auto started = std::chrono::steady_clock::now();
  auto r = run_dbstep({"-d", db.url, "-s", dir.string(), "migrate", "all"}, tmp.path());
  CHECK(r.code == 1);
  CHECK(contains(r.err, "migration 1 (1_long.up.sql) failed"));
  CHECK(contains(r.err, "relation \"nope\" does not exist"));
  CHECK(r.err.size() < 20000);  // the statement is cut for the message
  // Not a timing assertion on the machine's speed: a generous bound that only a regression to
  // quadratic (or crashing) redaction would cross.
  CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(60));
}

TEST_CASE("e2e postgres: RAISE NOTICE and WARNING in a migration reach stderr with the file name") {
  TempDir tmp;
  TestDatabase db;
  auto dir = tmp / "m";
  write_file(dir / "1_loud.up.sql",
             "CREATE TABLE loud (x int);\n"
             "DO $$ BEGIN RAISE NOTICE 'copied % rows', 42; RAISE WARNING 'check the index'; END $$;\n");
  auto r = run_dbstep({"-d", db.url, "-s", dir.string(), "migrate", "all"}, tmp.path());
  CHECK(r.code == 0);
  CHECK(contains(r.err, "notice: 1_loud.up.sql: copied 42 rows"));
  CHECK(contains(r.err, "warning: 1_loud.up.sql: check the index"));
  CHECK_FALSE(contains(r.out, "copied 42 rows"));  // stdout stays the run's report
  // dbstep's own bookkeeping (CREATE TABLE IF NOT EXISTS of a table that exists ...) is not shown.
  r = run_dbstep({"-d", db.url + "&x-lock-strategy=table", "-s", dir.string(), "migrate", "all"},
                 tmp.path());
  r = run_dbstep({"-d", db.url + "&x-lock-strategy=table", "-s", dir.string(), "migrate", "all"},
                 tmp.path());
  CHECK(r.code == 0);
  CHECK(r.err.empty());
}

TEST_CASE("e2e postgres: the driver is a module, loaded from beside the binary or lib/dbstep/") {
  TempDir tmp;
  TestDatabase db;
  auto dir = tmp / "m";
  write_file(dir / "1_a.up.sql", "CREATE TABLE a (x int);\n");
  // No module where DBSTEP_POSTGRES_MODULE points: a clear error naming it, exit 1.
  auto r = run_dbstep({"-d", db.url, "-s", dir.string(), "version"}, tmp.path(),
                      {{"DBSTEP_POSTGRES_MODULE", (tmp / "nowhere" / "dbstep-postgres.so").string()}});
  CHECK(r.code == 1);
  CHECK(contains(r.err, "dbstep-postgres.so, which is not installed"));
  // An installed tree: bin/dbstep and lib/dbstep/dbstep-postgres.so, found from the binary.
  const auto root = tmp / "prefix";
  std::filesystem::create_directories(root / "bin");
  std::filesystem::create_directories(root / "lib" / "dbstep");
  std::filesystem::copy_file(DBSTEP_BINARY, root / "bin" / "dbstep");
  std::filesystem::copy_file(std::filesystem::path(DBSTEP_BINARY).parent_path() / "dbstep-postgres.so",
                             root / "lib" / "dbstep" / "dbstep-postgres.so");
  const auto out = tmp / "installed.out";
  const std::string command = fmt::format("'{}' -d '{}' -s '{}' migrate all > '{}' 2>&1",
                                          (root / "bin" / "dbstep").string(), db.url,
                                          dir.string(), out.string());
  CHECK(std::system(command.c_str()) == 0);
  CHECK(db.scalar("SELECT version FROM schema_migrations") == "1");
}
