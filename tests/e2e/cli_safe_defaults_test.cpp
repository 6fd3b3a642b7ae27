// End-to-end (issue 11, items 1 and 7): safe defaults (an empty source or database is refused,
// the example migrations never reach a named database), plain paths and --db, Go-style
// booleans, `up 0`, the lock shared by sqlite3://file:u.db and u.db, SQLite's schema-qualified
// x-migrations-table, the version to force named after a failed no-transaction migration, and
// no 0-byte file after a failed first migration. Every refused command leaves the folder's files
// byte for byte as they were.

#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "tests/e2e/cli_safe_support.hpp"
#include "tests/e2e/run.hpp"
#include "tests/support.hpp"

using namespace dbstep::testing;

namespace {

// A folder `m` with migrations 1..2 and app.db at version 1.
void setup_app(const TempDir& tmp) {
  write_table_migrations(tmp / "m", 2);
  REQUIRE(run_dbstep({"-s", "m", "-d", "sqlite://app.db", "migrate", "1"}, tmp.path()).code == 0);
}

}  // namespace

TEST_CASE("cli-safe: an explicitly empty source or database is a usage error naming the flag") {
  TempDir tmp;
  setup_app(tmp);
  struct Case {
    std::vector<std::string> args;
    std::string flag;
  };
  const std::vector<Case> cases = {
      {{"-path", "", "-database", "", "up"}, "-database"},
      {{"-path", "", "-database", "sqlite://app.db", "up"}, "-path"},
      {{"-source", "", "-database", "sqlite://app.db", "up"}, "-source"},
      {{"-s", "", "-d", "app.db", "migrate", "all"}, "-s"},
      {{"-s", "m", "-d", "", "migrate", "all"}, "-d"},
      {{"--source=", "-d", "app.db", "migrate"}, "--source"},
      {{"-s", "m", "--database=", "migrate"}, "--database"},
      {{"-s", "m", "--db", "", "migrate"}, "--db"},
      {{"-path", "", "version"}, "-path"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.flag);
    const auto before = folder_bytes(tmp.path());
    auto r = run_dbstep(c.args, tmp.path());
    CHECK(r.code == 2);
    CHECK(contains(r.err, "dbstep: " + c.flag + " is empty"));
    CHECK(folder_bytes(tmp.path()) == before);  // app.db unchanged, no dbstep.db made
  }
  CHECK_FALSE(std::filesystem::exists(tmp / "dbstep.db"));

  // An environment variable that is set but empty is the same mistake.
  const auto before = folder_bytes(tmp.path());
  auto r = run_dbstep({"-s", "m", "up"}, tmp.path(), {{"DATABASE_URL", ""}});
  CHECK(r.code == 2);
  CHECK(contains(r.err, "DATABASE_URL is set but empty"));
  r = run_dbstep({"-d", "app.db", "up"}, tmp.path(), {{"DBSTEP_SOURCE", ""}});
  CHECK(r.code == 2);
  CHECK(contains(r.err, "DBSTEP_SOURCE is set but empty"));
  CHECK(folder_bytes(tmp.path()) == before);

  // --json reports it as a JSON error too.
  r = run_dbstep({"-s", "", "-d", "app.db", "migrate", "--json"}, tmp.path());
  CHECK(r.code == 2);
  CHECK(contains(r.out, "\"code\": \"usage\""));
  CHECK(contains(r.out, "-s is empty"));
}

TEST_CASE("cli-safe: a named database without a source is refused; the demo runs only unnamed") {
  TempDir tmp;
  setup_app(tmp);
  const auto before = folder_bytes(tmp.path());
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"-d", "app.db", "up"},
        std::vector<std::string>{"-database", "sqlite3://app.db", "up"},
        std::vector<std::string>{"-d", "sqlite://new.db", "migrate", "all"},
        std::vector<std::string>{"-d", "app.db", "version"}}) {
    auto r = run_dbstep(args, tmp.path());
    CHECK(r.code == 2);
    CHECK(contains(r.err, "no migrations named for sqlite"));
    CHECK(contains(r.err, "-s DIR"));
    CHECK(contains(r.err, "DBSTEP_SOURCE"));
  }
  auto r = run_dbstep({"up"}, tmp.path(), {{"DATABASE_URL", "sqlite://app.db"}});
  CHECK(r.code == 2);
  CHECK(contains(r.err, "no migrations named"));
  CHECK(folder_bytes(tmp.path()) == before);  // app.db unchanged, new.db and dbstep.db not made

  // Named explicitly, the example migrations are still there.
  r = run_dbstep({"-d", "app2.db", "-s", "embedded://", "up"}, tmp.path());
  CHECK(r.code == 0);
  CHECK(sqlite_scalar(tmp / "app2.db", "SELECT version FROM schema_migrations") == 6);

  // Neither named: the README's first command, dbstep's demo on ./dbstep.db.
  r = run_dbstep({"migrate", "all"}, tmp.path());
  CHECK(r.code == 0);
  CHECK(contains(r.out, "Running 6 pending migration(s) from version none to 6"));
  CHECK(sqlite_scalar(tmp / "dbstep.db", "SELECT version FROM schema_migrations") == 6);
}

TEST_CASE("cli-safe: a plain path as the database is a SQLite file; --db is --database") {
  TempDir tmp;
  write_table_migrations(tmp / "m", 2);
  std::filesystem::create_directories(tmp / "x");
  const std::string abs = (tmp / "abs.db").string();
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"-s", "m", "-d", "app.db", "up"},
        std::vector<std::string>{"-s", "m", "-d", "./x/app.db", "up"},
        std::vector<std::string>{"-s", "m", "-d", abs, "up"},
        std::vector<std::string>{"-s", "m", "--db", "db1.db", "up"},
        std::vector<std::string>{"-path", "m", "-db", "db2.db", "up"},
        std::vector<std::string>{"-s", "m", "--db=db3.db", "up"}}) {
    auto r = run_dbstep(args, tmp.path());
    CHECK(r.code == 0);
    CHECK(contains(r.out, "Database is now at version 2"));
  }
  for (const auto& f : {tmp / "app.db", tmp / "x" / "app.db", tmp / "abs.db", tmp / "db1.db",
                        tmp / "db2.db", tmp / "db3.db"}) {
    CAPTURE(f);
    CHECK(sqlite_scalar(f, "SELECT version FROM schema_migrations") == 2);
  }
  auto r = run_dbstep({"-s", "m", "-d", "app.db", "version"}, tmp.path());
  CHECK(r.out == "2\n");
  r = run_dbstep({"-s", "m", "--database", "a.db", "--db", "b.db", "up"}, tmp.path());
  CHECK(r.code == 2);
  CHECK(contains(r.err, "--database and --db name different databases"));
  CHECK_FALSE(std::filesystem::exists(tmp / "a.db"));
  CHECK_FALSE(std::filesystem::exists(tmp / "b.db"));
  // Not a path: a URL with an unknown scheme, and a libpq key=value string.
  r = run_dbstep({"-s", "m", "-d", "mysql:x", "up"}, tmp.path());
  CHECK(r.code == 1);
  CHECK(contains(r.err, "unknown database URL scheme"));
  r = run_dbstep({"-s", "m", "-d", "host=localhost", "up"}, tmp.path());
  CHECK(r.code == 1);
  CHECK_FALSE(std::filesystem::exists(tmp / "host=localhost"));
}

TEST_CASE("cli-safe: boolean flags take Go's values (-verbose=true, --json=0, -seq=f)") {
  TempDir tmp;
  setup_app(tmp);
  auto r = run_dbstep({"-s", "m", "-d", "app.db", "-verbose=true", "version"}, tmp.path());
  CHECK(r.code == 0);
  CHECK(contains(r.out, "Using "));
  r = run_dbstep({"-s", "m", "-d", "app.db", "--verbose=false", "version"}, tmp.path());
  CHECK(r.code == 0);
  CHECK(r.out == "1\n");
  r = run_dbstep({"-s", "m", "-d", "app.db", "-verbose", "--verbose=0", "version"}, tmp.path());
  CHECK(r.out == "1\n");  // the last one wins
  for (const char* yes : {"1", "t", "T", "TRUE", "true", "True"}) {
    r = run_dbstep({"-s", "m", "-d", "app.db", std::string("-json=") + yes, "version"}, tmp.path());
    CHECK(contains(r.out, "\"version\": 1"));
  }
  for (const char* no : {"0", "f", "F", "FALSE", "false", "False"}) {
    r = run_dbstep({"-s", "m", "-d", "app.db", std::string("--json=") + no, "version"}, tmp.path());
    CHECK(r.out == "1\n");
  }
  const auto before = folder_bytes(tmp.path());
  r = run_dbstep({"-s", "m", "-d", "app.db", "-verbose=maybe", "up"}, tmp.path());
  CHECK(r.code == 2);
  CHECK(contains(r.err, "invalid boolean value \"maybe\" for -verbose"));
  r = run_dbstep({"-s", "m", "-d", "app.db", "--single-transaction=yes", "up"}, tmp.path());
  CHECK(r.code == 2);  // Go's ParseBool has no "yes"
  r = run_dbstep({"-s", "m", "-d", "app.db", "drop", "--yes=false"}, tmp.path());
  CHECK(r.code != 0);  // no terminal and no --yes: drop refuses
  CHECK(folder_bytes(tmp.path()) == before);
  r = run_dbstep({"-s", "m", "-d", "app.db", "drop", "-f=true"}, tmp.path());
  CHECK(r.code == 0);
  CHECK(sqlite_scalar(tmp / "app.db", "SELECT COUNT(*) FROM sqlite_master") == 0);
  r = run_dbstep({"-s", "m", "-d", "app.db", "-single-transaction=T", "up"}, tmp.path());
  CHECK(r.code == 0);
  CHECK(sqlite_scalar(tmp / "app.db", "SELECT version FROM schema_migrations") == 2);
}

TEST_CASE("cli-safe: up 0 and down 0 with work pending say that nothing was asked for") {
  TempDir tmp;
  setup_app(tmp);
  const auto before = folder_bytes(tmp.path());
  auto r = run_dbstep({"-s", "m", "-d", "app.db", "up", "0"}, tmp.path());
  CHECK(r.code == 0);
  CHECK_FALSE(contains(r.out, "up to date"));
  CHECK(contains(r.out, "No migration applied: up 0 asks for none (the database stays at version 1)"));
  r = run_dbstep({"-s", "m", "-d", "app.db", "down", "0"}, tmp.path());
  CHECK(r.code == 0);
  CHECK(contains(r.out, "No migration rolled back: down 0 asks for none"));
  CHECK(folder_bytes(tmp.path()) == before);
}

TEST_CASE("cli-safe: sqlite3://file:u.db and u.db share one lock file") {
  TempDir tmp;
  write_table_migrations(tmp / "m", 2);
  auto r = run_dbstep({"-s", "m", "-d", "sqlite3://file:u.db", "up", "1"}, tmp.path());
  CHECK(r.code == 0);
  CHECK(std::filesystem::exists(tmp / "u.db"));
  CHECK(std::filesystem::exists(tmp / "u.db.dbstep-lock"));
  CHECK_FALSE(std::filesystem::exists(tmp / "file:u.db.dbstep-lock"));
  CHECK_FALSE(std::filesystem::exists(tmp / "file:u.db"));
  r = run_dbstep({"-s", "m", "-d", "sqlite3://file:u.db", "version"}, tmp.path());
  CHECK(r.out == "1\n");

  // Another process holding u.db's lock keeps a run through file:u.db waiting.
  const int fd = ::open((tmp / "u.db.dbstep-lock").c_str(), O_RDWR);
  REQUIRE(fd >= 0);
  REQUIRE(::flock(fd, LOCK_EX | LOCK_NB) == 0);
  const auto before = folder_bytes(tmp.path());
  r = run_dbstep({"-s", "m", "-d", "sqlite3://file:u.db", "--lock-timeout", "0.3", "up"},
                 tmp.path());
  CHECK(r.code == 1);
  CHECK(contains(r.err, "timed out"));
  CHECK(contains(r.err, "u.db.dbstep-lock"));
  r = run_dbstep({"-s", "m", "-d", "sqlite://file:./u.db", "--lock-timeout", "0.3", "up"},
                 tmp.path());
  CHECK(r.code == 1);
  CHECK(folder_bytes(tmp.path()) == before);
  ::close(fd);
  r = run_dbstep({"-s", "m", "-d", "sqlite3://file:u.db", "up"}, tmp.path());
  CHECK(r.code == 0);
  CHECK(sqlite_scalar(tmp / "u.db", "SELECT version FROM schema_migrations") == 2);
}

TEST_CASE("cli-safe: SQLite x-migrations-table=main.mig is table mig in schema main") {
  TempDir tmp;
  write_table_migrations(tmp / "m", 2);
  {
    // A database golang-migrate left at version 1 with x-migrations-table=main.mig.
    SQLite::Database db((tmp / "g.db").string(), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    db.exec("CREATE TABLE main.mig (version uint64,dirty bool); INSERT INTO mig VALUES (1, 0); "
            "CREATE TABLE t1 (x int); INSERT INTO t1 VALUES (1);");
  }
  const std::string url = "sqlite://g.db?x-migrations-table=main.mig";
  auto r = run_dbstep({"-s", "m", "-d", url, "version"}, tmp.path());
  CHECK(r.code == 0);
  CHECK(r.out == "1\n");
  r = run_dbstep({"-s", "m", "-d", url, "up"}, tmp.path());
  CHECK(r.code == 0);
  CHECK(contains(r.out, "Running 1 pending migration(s) from version 1 to 2"));
  CHECK(sqlite_scalar(tmp / "g.db", "SELECT version FROM mig") == 2);
  CHECK(sqlite_scalar(tmp / "g.db", "SELECT COUNT(*) FROM mig_history") == 1);
  CHECK(sqlite_scalar(tmp / "g.db", "SELECT COUNT(*) FROM sqlite_master WHERE name LIKE 'main.%'") == 0);
  CHECK(sqlite_scalar(tmp / "g.db", "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND "
                                    "name = 'mig_version_unique' AND tbl_name = 'mig'") == 1);
  // Quoted as one name, it is another table, which does not exist.
  r = run_dbstep({"-s", "m", "-d", "sqlite://g.db?x-migrations-table=\"main.mig\"", "version"},
                 tmp.path());
  CHECK(r.out == "none (no migration applied yet)\n");
  r = run_dbstep({"-s", "m", "-d", "sqlite://g.db?x-migrations-table=\"main\".\"mig\"", "version"},
                 tmp.path());
  CHECK(r.out == "2\n");
}

TEST_CASE("cli-safe: a failed no-transaction migration's message names the version to force") {
  TempDir tmp;
  write_table_migrations(tmp / "m", 2);
  write_file(tmp / "m" / "3_bad.up.sql",
             "-- dbstep:no-transaction\nCREATE TABLE t3 (x int);\nINSERT INTO nowhere VALUES (1);\n");
  write_file(tmp / "m" / "3_bad.down.sql", "DROP TABLE t3;\n");
  auto r = run_dbstep({"-s", "m", "-d", "app.db", "up"}, tmp.path());
  CHECK(r.code == 1);
  CHECK(contains(r.err, "the database is now dirty at version 3 because migration 3 ran outside a "
                        "transaction and failed part way"));
  CHECK(contains(r.err, "`dbstep force 2` (the version before it)"));
  REQUIRE(run_dbstep({"-s", "m", "-d", "app.db", "force", "2"}, tmp.path()).code == 0);

  // Going down: migration 3 applied, its down fails part way.
  write_file(tmp / "m" / "3_bad.up.sql", "CREATE TABLE IF NOT EXISTS t3 (x int);\n");
  write_file(tmp / "m" / "3_bad.down.sql",
             "-- dbstep:no-transaction\nDROP TABLE t3;\nINSERT INTO nowhere VALUES (1);\n");
  REQUIRE(run_dbstep({"-s", "m", "-d", "app.db", "up", "--ignore-checksums"}, tmp.path()).code == 0);
  r = run_dbstep({"-s", "m", "-d", "app.db", "down", "1"}, tmp.path());
  CHECK(r.code == 1);
  CHECK(contains(r.err, "the rollback of migration 3 ran outside a transaction and failed part way"));
  CHECK(contains(r.err, "`dbstep force 2` (the version below it)"));
}

TEST_CASE("cli-safe: a new database whose first migration fails leaves no file") {
  TempDir tmp;
  write_file(tmp / "m" / "1_bad.up.sql", "CREATE TABLE t (x int);\nINSERT INTO nowhere VALUES (1);\n");
  auto r = run_dbstep({"-s", "m", "-d", "fresh.db", "up"}, tmp.path());
  CHECK(r.code == 1);
  CHECK_FALSE(std::filesystem::exists(tmp / "fresh.db"));
  CHECK_FALSE(std::filesystem::exists(tmp / "fresh.db-journal"));
}
