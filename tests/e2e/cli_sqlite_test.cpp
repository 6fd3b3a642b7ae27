// End-to-end: the built `dbstep` binary on temporary SQLite files, checked by exit code, output
// and the database's contents.

#include <doctest/doctest.h>

#include <SQLiteCpp/SQLiteCpp.h>
#include <fmt/format.h>

#include <set>
#include <string>

#include "tests/e2e/run.hpp"
#include "tests/support.hpp"

using namespace dbstep::testing;

namespace {

std::set<std::string> tables(const std::filesystem::path& db) {
  SQLite::Database d(db.string());
  SQLite::Statement q(d, "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'");
  std::set<std::string> out;
  while (q.executeStep()) out.insert(q.getColumn(0).getString());
  return out;
}

long long scalar(const std::filesystem::path& db, const std::string& sql) {
  SQLite::Database d(db.string());
  return d.execAndGet(sql).getInt64();
}

// A folder of migrations 1..n where each inserts its number into a log table.
void write_counting_migrations(const std::filesystem::path& dir, int n) {
  write_file(dir / "0001_log.up.sql", "CREATE TABLE log (n int UNIQUE);\nINSERT INTO log VALUES (1);\n");
  write_file(dir / "0001_log.down.sql", "DROP TABLE log;\n");
  for (int i = 2; i <= n; ++i) {
    write_file(dir / fmt::format("{:04}_step.up.sql", i), fmt::format("INSERT INTO log VALUES ({});\n", i));
    write_file(dir / fmt::format("{:04}_step.down.sql", i), fmt::format("DELETE FROM log WHERE n = {};\n", i));
  }
}

}  // namespace

TEST_CASE("e2e: migrate all, rollback, goto and version on the embedded default migrations") {
  TempDir tmp;
  auto r = run_dbstep({"migrate", "all"}, tmp.path());
  CHECK(r.code == 0);
  CHECK(contains(r.out, "Running 6 pending migration(s) from version none to 6"));
  CHECK(contains(r.out, "Applied migration 1: create_users ("));
  CHECK(contains(r.out, "Applied migration 6: move_channel_topics ("));
  CHECK(r.err.empty());
  auto db = tmp / "dbstep.db";  // the default database
  CHECK(tables(db) == std::set<std::string>{"users", "channels", "channel_members", "messages",
                                            "reactions", "channel_topics", "schema_migrations", "schema_migrations_history"});

  r = run_dbstep({"version"}, tmp.path());
  CHECK(r.code == 0);
  CHECK(r.out == "6\n");

  r = run_dbstep({"migrate", "all"}, tmp.path());
  CHECK(r.code == 0);
  CHECK(contains(r.out, "Database is up to date (version 6)"));

  r = run_dbstep({"rollback", "2"}, tmp.path());
  CHECK(r.code == 0);
  CHECK(contains(r.out, "Rolling back 2 migration(s) from version 6 to 4"));
  CHECK(contains(r.out, "Rolled back migration 6: move_channel_topics"));
  CHECK(scalar(db, "SELECT version FROM schema_migrations") == 4);

  r = run_dbstep({"goto", "6"}, tmp.path());
  CHECK(r.code == 0);
  CHECK(scalar(db, "SELECT version FROM schema_migrations") == 6);
  r = run_dbstep({"goto", "2"}, tmp.path());
  CHECK(r.code == 0);
  CHECK(tables(db) == std::set<std::string>{"users", "channels", "channel_members", "schema_migrations", "schema_migrations_history"});
  r = run_dbstep({"goto", "2"}, tmp.path());
  CHECK(r.code == 0);
  CHECK(contains(r.out, "already at version 2"));
  r = run_dbstep({"goto", "9"}, tmp.path());
  CHECK(r.code == 1);
  CHECK(contains(r.err, "no migration found for version 9"));

  r = run_dbstep({"rollback", "all", "--yes"}, tmp.path());
  CHECK(r.code == 0);
  CHECK(tables(db) == std::set<std::string>{"schema_migrations", "schema_migrations_history"});
  CHECK(scalar(db, "SELECT COUNT(*) FROM schema_migrations") == 0);
  r = run_dbstep({"version"}, tmp.path());
  CHECK(r.code == 0);
  CHECK(contains(r.out, "none"));
  r = run_dbstep({"rollback", "all"}, tmp.path());
  CHECK(r.code == 0);
  CHECK(contains(r.out, "Nothing to roll back"));
}

TEST_CASE("e2e: SQLite runs never load libpq") {
  // The PostgreSQL module, libpqxx, libpq and the thirty libraries it needs are loaded when a
  // PostgreSQL URL is opened, not at start-up. glibc's loader lists every library it loads under LD_DEBUG=libs.
  TempDir tmp;
  auto r = run_dbstep({"migrate", "all"}, tmp.path(), {{"LD_DEBUG", "libs"}});
  CHECK(r.code == 0);
  CHECK(contains(r.err, "libc.so.6"));  // the loader did report
  // Library file names: the build folder's own name may hold "libpq" (build-pg-libpqxx).
  CHECK_FALSE(contains(r.err, "libpq.so"));
  CHECK_FALSE(contains(r.err, "libpqxx-6."));
  CHECK_FALSE(contains(r.err, "dbstep-postgres.so"));
}

TEST_CASE("e2e: data survives the default schema's data migrations both ways") {
  TempDir tmp;
  auto db = tmp / "chat.db";
  std::string url = "sqlite://" + db.string();
  REQUIRE(run_dbstep({"-d", url, "-s", "embedded://", "migrate", "2"}, tmp.path()).code == 0);
  {
    SQLite::Database d(db.string(), SQLite::OPEN_READWRITE);
    d.exec("INSERT INTO users (id, name, email) VALUES (1, 'ada', 'ada@example.com');"
           "INSERT INTO channels (id, name, topic) VALUES (1, 'general', 'hello'), (2, 'random', NULL);");
  }
  REQUIRE(run_dbstep({"-d", url, "-s", "embedded://", "migrate", "all"}, tmp.path()).code == 0);
  CHECK(scalar(db, "SELECT COUNT(*) FROM channel_topics WHERE channel_id = 1 AND topic = 'hello'") == 1);
  CHECK(scalar(db, "SELECT COUNT(*) FROM users WHERE display_name = 'ada'") == 1);
  REQUIRE(run_dbstep({"-d", url, "-s", "embedded://", "rollback", "2"}, tmp.path()).code == 0);
  CHECK(scalar(db, "SELECT COUNT(*) FROM channels WHERE id = 1 AND topic = 'hello'") == 1);
  CHECK(scalar(db, "SELECT COUNT(*) FROM channels WHERE id = 2 AND topic IS NULL") == 1);
}

TEST_CASE("e2e: a migration failing in its third statement leaves nothing of itself") {
  TempDir tmp;
  auto dir = tmp / "migrations";
  write_file(dir / "1_a.up.sql", "CREATE TABLE a (x int);\n");
  write_file(dir / "2_b.up.sql", "CREATE TABLE b (x int);\n");
  write_file(dir / "3_broken.up.sql",
             "CREATE TABLE c (x int);\n"
             "INSERT INTO c VALUES (1);\n"
             "\n"
             "INSERT INTO c VALUES (1, 2, 3);\n");
  write_file(dir / "4_d.up.sql", "CREATE TABLE d (x int);\n");
  auto db = tmp / "x.db";
  auto r = run_dbstep({"-d", "sqlite://" + db.string(), "-s", dir.string(), "migrate", "all"}, tmp.path());
  CHECK(r.code == 1);
  CHECK(contains(r.out, "Applied migration 2: b"));
  CHECK(contains(r.err, "migration 3 (3_broken.up.sql) failed at line 4, column 1"));
  CHECK(contains(r.err, "table c has 1 columns but 3 values were supplied"));
  CHECK(contains(r.err, "the database is still at version 2"));
  CHECK(contains(r.err, "statement: INSERT INTO c VALUES (1, 2, 3);"));
  CHECK(tables(db) == std::set<std::string>{"a", "b", "schema_migrations", "schema_migrations_history"});
  CHECK(scalar(db, "SELECT version FROM schema_migrations") == 2);
  CHECK(scalar(db, "SELECT dirty FROM schema_migrations") == 0);
}

TEST_CASE("e2e: bad sources and URLs are named, exit 1, and change nothing") {
  TempDir tmp;
  auto db = "sqlite://" + (tmp / "x.db").string();

  write_file(tmp / "dup" / "1_foo.up.sql", "SELECT 1;");
  write_file(tmp / "dup" / "1_bar.up.sql", "SELECT 2;");
  auto r = run_dbstep({"-d", db, "-path", (tmp / "dup").string(), "up"}, tmp.path());
  CHECK(r.code == 1);
  CHECK(contains(r.err, "duplicate migration file"));
  CHECK(contains(r.err, "1_foo.up.sql"));
  CHECK(contains(r.err, "1_bar.up.sql"));

  std::filesystem::create_directories(tmp / "empty");
  r = run_dbstep({"-d", db, "-s", (tmp / "empty").string(), "migrate", "all"}, tmp.path());
  CHECK(r.code == 1);
  CHECK(contains(r.err, "no migrations found in folder " + (tmp / "empty").string()));

  r = run_dbstep({"-d", db, "-s", (tmp / "nowhere").string(), "migrate", "all"}, tmp.path());
  CHECK(r.code == 1);
  CHECK(contains(r.err, "migration folder " + (tmp / "nowhere").string() + " does not exist"));

  r = run_dbstep({"-d", "mysql://u:hunter2@db/x", "-s", "embedded://", "version"}, tmp.path());
  CHECK(r.code == 1);
  CHECK(contains(r.err, "unknown database URL scheme \"mysql\""));
  CHECK(contains(r.err, "sqlite"));
  CHECK_FALSE(contains(r.err, "hunter2"));

  r = run_dbstep({"-s", "s3://bucket", "version"}, tmp.path());
  CHECK(r.code == 1);
  CHECK(contains(r.err, "unknown source URL scheme \"s3\""));
  CHECK_FALSE(std::filesystem::exists(tmp / "x.db"));
}

TEST_CASE("e2e: usage errors exit 2") {
  TempDir tmp;
  for (const auto& args : std::vector<std::vector<std::string>>{
           {}, {"frobnicate"}, {"migrate", "abc"}, {"rollback"}, {"goto"}, {"goto", "x"},
           {"--no-such-option", "version"}, {"force"}, {"force", "-2"}, {"down", "5", "-all"},
           {"migrate", "1", "2"}}) {
    CAPTURE(fmt::format("{}", fmt::join(args, " ")));
    auto r = run_dbstep(args, tmp.path());
    CHECK(r.code == 2);
    CHECK_FALSE(r.err.empty());
  }
  auto help = run_dbstep({"--help"}, tmp.path());
  CHECK(help.code == 0);
  CHECK(contains(help.out, "rollback all|N"));
  auto cmd_help = run_dbstep({"rollback", "--help"}, tmp.path());
  CHECK(cmd_help.code == 0);
  CHECK(contains(cmd_help.out, "Roll back"));
  auto version = run_dbstep({"--version"}, tmp.path());
  CHECK(version.code == 0);
  CHECK(contains(version.out, "dbstep "));
  CHECK_FALSE(std::filesystem::exists(tmp / "dbstep.db"));
}

TEST_CASE("e2e: golang-migrate's spellings, counts, force and fewer-than-requested") {
  TempDir tmp;
  auto dir = tmp / "m";
  write_counting_migrations(dir, 5);
  std::string db = "sqlite3://" + (tmp / "gm.db").string();
  auto r = run_dbstep({"-path", dir.string(), "-database", db, "up", "2"}, tmp.path());
  CHECK(r.code == 0);
  CHECK(scalar(tmp / "gm.db", "SELECT version FROM schema_migrations") == 2);
  r = run_dbstep({"-path", dir.string(), "-database", db, "up", "10"}, tmp.path());
  CHECK(r.code == 4);  // 3 applied, 7 were not there
  CHECK(contains(r.err, "7 fewer migration(s) than requested"));
  CHECK(scalar(tmp / "gm.db", "SELECT version FROM schema_migrations") == 5);
  r = run_dbstep({"-path", dir.string(), "-database", db, "down", "1"}, tmp.path());
  CHECK(r.code == 0);
  CHECK(scalar(tmp / "gm.db", "SELECT version FROM schema_migrations") == 4);
  r = run_dbstep({"-path", dir.string(), "-database", db, "force", "2"}, tmp.path());
  CHECK(r.code == 0);
  r = run_dbstep({"-path", dir.string(), "-database", db, "version"}, tmp.path());
  CHECK(r.out == "2\n");
  r = run_dbstep({"--source", "file://" + dir.string(), "--database", db, "down", "-all"}, tmp.path());
  CHECK(r.code == 0);
  CHECK(scalar(tmp / "gm.db", "SELECT COUNT(*) FROM schema_migrations") == 0);
  // DATABASE_URL and DBSTEP_SOURCE stand in for -d and -s.
  r = run_dbstep({"migrate", "all"}, tmp.path(), {{"DATABASE_URL", db}, {"DBSTEP_SOURCE", dir.string()}});
  CHECK(r.code == 0);
  CHECK(scalar(tmp / "gm.db", "SELECT version FROM schema_migrations") == 5);
  // A dirty database is refused with the way out.
  run_dbstep({"-s", dir.string(), "-d", db, "force", "3"}, tmp.path());
  {
    SQLite::Database d((tmp / "gm.db").string(), SQLite::OPEN_READWRITE);
    d.exec("UPDATE schema_migrations SET dirty = 1");
  }
  r = run_dbstep({"-s", dir.string(), "-d", db, "migrate", "all"}, tmp.path());
  CHECK(r.code == 1);
  CHECK(contains(r.err, "dirty at version 3"));
  r = run_dbstep({"-s", dir.string(), "-d", db, "version"}, tmp.path());
  CHECK(r.out == "3 (dirty)\n");
  CHECK(run_dbstep({"-s", dir.string(), "-d", db, "force", "5"}, tmp.path()).code == 0);
  CHECK(run_dbstep({"-s", dir.string(), "-d", db, "migrate", "all"}, tmp.path()).code == 0);
}

TEST_CASE("e2e: a database golang-migrate left at version N continues at N") {
  TempDir tmp;
  auto dir = tmp / "m";
  write_counting_migrations(dir, 4);
  auto file = tmp / "left.db";
  {
    // What golang-migrate's sqlite3 driver leaves after `migrate up 2`.
    SQLite::Database d(file.string(), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    d.exec("CREATE TABLE IF NOT EXISTS schema_migrations (version uint64,dirty bool);"
           "CREATE UNIQUE INDEX IF NOT EXISTS version_unique ON schema_migrations (version);"
           "CREATE TABLE log (n int UNIQUE); INSERT INTO log VALUES (1); INSERT INTO log VALUES (2);"
           "INSERT INTO schema_migrations (version, dirty) VALUES (2, false);");
  }
  auto r = run_dbstep({"-d", "sqlite3://" + file.string(), "-s", dir.string(), "migrate", "all"}, tmp.path());
  CHECK(r.code == 0);
  CHECK(contains(r.out, "Running 2 pending migration(s) from version 2 to 4"));
  CHECK(scalar(file, "SELECT COUNT(*) FROM log") == 4);
  CHECK(scalar(file, "SELECT version FROM schema_migrations") == 4);
}

TEST_CASE("e2e: Ctrl-C lets the running migration finish and starts no other") {
  TempDir tmp;
  auto dir = tmp / "m";
  // Migration 1 takes a noticeable while (a recursive count); 2 and 3 are quick.
  write_file(dir / "1_slow.up.sql",
             "CREATE TABLE slow AS WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c "
             "WHERE x < 3000000) SELECT count(*) AS n FROM c;\n");
  write_file(dir / "2_quick.up.sql", "CREATE TABLE quick (x int);\n");
  write_file(dir / "3_quick.up.sql", "CREATE TABLE quicker (x int);\n");
  auto file = tmp / "stop.db";
  Process p({"-d", "sqlite://" + file.string(), "-s", dir.string(), "migrate", "all"}, tmp.path());
  // Wait until the run has started (its plan is printed), then interrupt it.
  p.wait_for_output("Running 3");
  ::kill(p.pid(), SIGINT);
  auto r = p.wait();
  CHECK(r.code == 130);
  CHECK(contains(r.err, "Stopped as asked"));
  CHECK(scalar(file, "SELECT dirty FROM schema_migrations") == 0);
  CHECK(scalar(file, "SELECT version FROM schema_migrations") == 1);
  CHECK(tables(file) == std::set<std::string>{"slow", "schema_migrations", "schema_migrations_history"});
}

TEST_CASE("e2e: --single-transaction applies all pending migrations or none") {
  TempDir tmp;
  auto dir = tmp / "m";
  write_counting_migrations(dir, 5);
  write_file(dir / "0006_broken.up.sql", "INSERT INTO log VALUES (6);\nINSERT INTO log VALUES (6);\n");
  auto file = tmp / "one.db";
  std::string db = "sqlite://" + file.string();
  auto r = run_dbstep({"-d", db, "-s", dir.string(), "migrate", "2"}, tmp.path());
  REQUIRE(r.code == 0);
  r = run_dbstep({"-d", db, "-s", dir.string(), "migrate", "all", "--single-transaction"}, tmp.path());
  CHECK(r.code == 1);
  CHECK(contains(r.err, "migration 6 (0006_broken.up.sql) failed at line 2"));
  CHECK(contains(r.err, "the database is still at version 2"));
  CHECK(contains(r.err, "rolled back all 4 migration(s)"));
  CHECK(scalar(file, "SELECT COUNT(*) FROM log") == 2);
  std::filesystem::remove(dir / "0006_broken.up.sql");
  r = run_dbstep({"-d", db, "-s", dir.string(), "migrate", "all", "--single-transaction"}, tmp.path());
  CHECK(r.code == 0);
  CHECK(contains(r.out, "Applied migration 5: step"));
  CHECK(scalar(file, "SELECT COUNT(*) FROM log") == 5);
  r = run_dbstep({"-d", db, "-s", dir.string(), "rollback", "all", "--single-transaction"}, tmp.path());
  CHECK(r.code == 0);
  CHECK(tables(file) == std::set<std::string>{"schema_migrations", "schema_migrations_history"});
}

TEST_CASE("e2e: a second process waits for a migration running outside a transaction") {
  TempDir tmp;
  auto dir = tmp / "m";
  write_file(dir / "1_slow.up.sql",
             "-- dbstep:no-transaction\n"
             "CREATE TABLE slow AS WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c "
             "WHERE x < 3000000) SELECT count(*) AS n FROM c;\n");
  auto file = tmp / "nt.db";
  std::string db = "sqlite://" + file.string() + "?_journal_mode=wal";
  Process first({"-d", db, "-s", dir.string(), "migrate", "all"}, tmp.path());
  first.wait_for_output("Running 1");
  auto second = run_dbstep({"-d", db, "-s", dir.string(), "migrate", "all"}, tmp.path());
  auto r = first.wait();
  CHECK(r.code == 0);
  CHECK(second.code == 0);  // it waited, then found nothing to do; it never saw "dirty"
  CHECK_FALSE(contains(second.err, "dirty"));
  CHECK(contains(second.out, "up to date"));
  CHECK(scalar(file, "SELECT version FROM schema_migrations") == 1);
  CHECK(scalar(file, "SELECT dirty FROM schema_migrations") == 0);
}
