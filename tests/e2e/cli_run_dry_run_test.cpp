// End-to-end: --dry-run of migrate, rollback, goto and redo: the plan, each step's transaction
// decision and the statements as the driver would send them, with line numbers; and the
// database only read: a SQLite file byte-identical (hash before and after), no file created
// where there was none, no table created on PostgreSQL. A dirty database and a file the split
// refuses fail as the run would.

#include <doctest/doctest.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "tests/e2e/run.hpp"
#include "tests/e2e/target.hpp"
#include "tests/support.hpp"

using namespace dbstep::testing;
using nlohmann::json;

namespace {

std::set<std::string> files_in(const std::filesystem::path& dir) {
  std::set<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    out.insert(e.path().filename().string());
  }
  return out;
}

std::size_t hash_of(const std::filesystem::path& file) {
  return std::hash<std::string>{}(read_file(file));
}

void write_sqlite_migrations(const std::filesystem::path& dir) {
  write_file(dir / "1_a.up.sql", "CREATE TABLE a (id INTEGER PRIMARY KEY);\nINSERT INTO a VALUES (1);\n");
  write_file(dir / "1_a.down.sql", "DROP TABLE a;\n");
  // Its INSERT can only be prepared once b exists: the steps before it ran on the scratch copy.
  write_file(dir / "2_b.up.sql",
             "-- b refers to a\nCREATE TABLE b (\n  id INTEGER REFERENCES a(id)\n);\n\n"
             "INSERT INTO b SELECT id FROM a;\n");
  write_file(dir / "2_b.down.sql", "DROP TABLE b;\n");
  write_file(dir / "3_c.up.sql", "CREATE TABLE c (x);\nVACUUM;\n");
  write_file(dir / "3_c.down.sql", "DROP TABLE c;\n");
  write_file(dir / "4_d.up.sql", "BEGIN;\nCREATE TABLE d (x);\nCOMMIT;\n");
  write_file(dir / "5_e.up.sql", "-- dbstep:no-transaction\nCREATE TABLE e (x);\n");
}

}  // namespace

TEST_CASE("e2e cli run: --dry-run on SQLite plans, shows statements, and changes nothing") {
  TempDir tmp;
  const auto dir = tmp / "migrations";
  write_sqlite_migrations(dir);
  const auto db_file = tmp / "app.db";
  const std::string db = "sqlite://" + db_file.string();
  auto dbstep = [&](std::vector<std::string> args) {
    std::vector<std::string> all = {"-s", dir.string(), "-d", db};
    all.insert(all.end(), args.begin(), args.end());
    return run_dbstep(all, tmp.path());
  };

  // No database yet: the plan, and no file (nor lock file, nor journal) is created.
  const auto before_files = files_in(tmp.path());
  RunResult r = dbstep({"migrate", "--dry-run"});
  INFO(r.out << r.err);
  CHECK(r.code == 0);
  CHECK(files_in(tmp.path()) == before_files);
  CHECK_FALSE(std::filesystem::exists(db_file));
  CHECK(contains(r.out, "Dry run of migrate: nothing was changed"));
  CHECK(contains(r.out, "[1/5] migration 1 up to version 1: 1_a.up.sql, in a transaction"));
  CHECK(contains(r.out, "    line 1: CREATE TABLE a (id INTEGER PRIMARY KEY);"));
  CHECK(contains(r.out, "    line 2: INSERT INTO a VALUES (1);"));
  CHECK(contains(r.out, "    line 2: CREATE TABLE b (\n"));
  CHECK(contains(r.out, "    line 6: INSERT INTO b SELECT id FROM a;"));
  CHECK(contains(r.out, "3_c.up.sql, outside a transaction (it holds VACUUM (line 2)"));
  CHECK(contains(r.out, "4_d.up.sql, in a transaction"));
  CHECK(contains(r.out, "the file's own BEGIN and COMMIT are not sent"));
  CHECK_FALSE(contains(r.out, "line 1: BEGIN"));
  CHECK(contains(r.out, "5_e.up.sql, outside a transaction (it says -- dbstep:no-transaction)"));

  // The same as JSON.
  r = dbstep({"migrate", "--dry-run", "--json"});
  CHECK(r.code == 0);
  CHECK_FALSE(std::filesystem::exists(db_file));
  {
    const json j = json::parse(r.out);
    CHECK(j.at("command") == "migrate");
    CHECK(j.at("dry_run") == true);
    CHECK(j.at("from").is_null());
    CHECK(j.at("to") == 5);
    REQUIRE(j.at("steps").size() == 5);
    const json& b = j.at("steps").at(1);
    CHECK(b.at("file") == "2_b.up.sql");
    CHECK(b.at("direction") == "up");
    CHECK(b.at("in_transaction") == true);
    CHECK(b.at("why_outside").is_null());
    REQUIRE(b.at("statements").size() == 2);
    CHECK(b.at("statements").at(1).at("line") == 6);
    CHECK(b.at("statements").at(1).at("text") == "INSERT INTO b SELECT id FROM a;");
    const json& c = j.at("steps").at(2);
    CHECK(c.at("in_transaction") == false);
    CHECK(contains(c.at("why_outside").get<std::string>(), "VACUUM"));
    CHECK(j.at("steps").at(3).at("statements").size() == 1);  // BEGIN and COMMIT not sent
  }

  // An existing database: byte for byte the same afterwards, and no file added beside it.
  REQUIRE(dbstep({"migrate", "2"}).code == 0);
  const auto hash = hash_of(db_file);
  const auto files = files_in(tmp.path());
  auto unchanged = [&] {
    CHECK(hash_of(db_file) == hash);
    CHECK(files_in(tmp.path()) == files);
  };
  r = dbstep({"migrate", "--dry-run"});
  CHECK(r.code == 0);
  CHECK(contains(r.out, "SQLite database " + db_file.string() + " is at version 2"));
  CHECK(contains(r.out, "[1/3] migration 3 up"));
  CHECK_FALSE(contains(r.out, "migration 2 up"));
  unchanged();

  r = dbstep({"rollback", "all", "--dry-run"});
  CHECK(r.code == 0);
  CHECK(contains(r.out, "[1/2] migration 2 down to version 1: 2_b.down.sql, in a transaction"));
  CHECK(contains(r.out, "    line 1: DROP TABLE b;"));
  CHECK(contains(r.out, "[2/2] migration 1 down to version none: 1_a.down.sql"));
  unchanged();

  r = dbstep({"goto", "1", "--dry-run"});
  CHECK(r.code == 0);
  CHECK(contains(r.out, "[1/1] migration 2 down to version 1"));
  unchanged();

  r = dbstep({"redo", "--dry-run"});
  CHECK(r.code == 0);
  CHECK(contains(r.out, "[1/2] migration 2 down to version 1: 2_b.down.sql"));
  CHECK(contains(r.out, "[2/2] migration 2 up to version 2: 2_b.up.sql"));
  unchanged();

  r = dbstep({"migrate", "9", "--dry-run"});
  CHECK(r.code == 4);  // what the run would exit with: fewer than requested
  CHECK(contains(r.out, "6 fewer migration(s) than requested"));
  unchanged();

  // --single-transaction would refuse the VACUUM file: so does its dry run.
  r = dbstep({"migrate", "--dry-run", "--single-transaction"});
  CHECK(r.code == 1);
  CHECK(contains(r.err, "3_c.up.sql"));
  unchanged();

  // A statement SQLite cannot prepare: the run's error, with file and line.
  write_file(dir / "3_c.up.sql", "CREATE TABLE c (x);\n\nINSERT INTO nowhere VALUES (1);\n");
  r = dbstep({"migrate", "--dry-run", "--json"});
  CHECK(r.code == 1);
  {
    const json j = json::parse(r.out);
    CHECK(j.at("error").at("code") == "migration_failed");
    CHECK(j.at("error").at("file") == "3_c.up.sql");
    CHECK(j.at("error").at("line") == 3);
  }
  unchanged();

  // A dirty database: refused, as the run would be; nothing planned.
  {
    SQLite::Database d(db_file.string(), SQLite::OPEN_READWRITE);
    d.exec("UPDATE schema_migrations SET dirty = 1");
  }
  const auto dirty_hash = hash_of(db_file);
  r = dbstep({"migrate", "--dry-run"});
  CHECK(r.code == 1);
  CHECK(contains(r.err, "dirty at version 2"));
  CHECK(r.out.empty());
  CHECK(hash_of(db_file) == dirty_hash);
  r = dbstep({"rollback", "1", "--dry-run", "--json"});
  CHECK(r.code == 1);
  CHECK(json::parse(r.out).at("error").at("code") == "dirty");
  CHECK(hash_of(db_file) == dirty_hash);

  // Commands that change nothing anyway do not take it.
  r = dbstep({"status", "--dry-run"});
  CHECK(r.code == 2);
  CHECK(contains(r.err, "status does not take --dry-run"));
}

TEST_CASE("e2e cli run: --dry-run on PostgreSQL shows the statements and creates nothing") {
  TempDir tmp;
  const auto dir = tmp / "migrations";
  write_file(dir / "1_a.up.sql", "CREATE TABLE a (id int);\n\nINSERT INTO a VALUES (1);\n");
  write_file(dir / "1_a.down.sql", "DROP TABLE a;\n");
  write_file(dir / "2_idx.up.sql", "-- concurrently\nCREATE INDEX CONCURRENTLY a_id ON a (id);\n");
  write_file(dir / "2_idx.down.sql", "DROP INDEX a_id;\n");
  write_file(dir / "3_w.up.sql", "BEGIN;\nCREATE TABLE w (x int);\nCOMMIT;\n");
  PostgresTarget target;
  // A connection per question: the snapshot waits for every other session to end.
  auto query = [&](const std::string& sql) { return PgConnection(target.url("")).query(sql); };
  auto table_count = [&] {
    return query("SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()")[0][0];
  };
  auto dbstep = [&](std::vector<std::string> args) {
    std::vector<std::string> all = {"-s", dir.string(), "-d", target.url("")};
    all.insert(all.end(), args.begin(), args.end());
    return run_dbstep(all, tmp.path());
  };

  RunResult r = dbstep({"migrate", "--dry-run"});
  INFO(r.out << r.err);
  CHECK(r.code == 0);
  CHECK(table_count() == "0");  // not even the version table
  CHECK(contains(r.out, "[1/3] migration 1 up to version 1: 1_a.up.sql, in a transaction"));
  // PostgreSQL's statements are sent without their ';'.
  CHECK(contains(r.out, "    line 1: CREATE TABLE a (id int)\n    line 3: INSERT INTO a VALUES (1)\n"));
  CHECK(contains(r.out, "2_idx.up.sql, outside a transaction (it holds CREATE INDEX CONCURRENTLY)"));
  CHECK(contains(r.out, "    line 2: CREATE INDEX CONCURRENTLY a_id ON a (id)\n"));
  CHECK(contains(r.out, "the file's own BEGIN and COMMIT are not sent"));

  REQUIRE(dbstep({"migrate", "1"}).code == 0);
  const Snapshot before = target.snapshot();
  r = dbstep({"redo", "--dry-run", "--json"});
  CHECK(r.code == 0);
  {
    const json j = json::parse(r.out);
    REQUIRE(j.at("steps").size() == 2);
    CHECK(j.at("steps").at(0).at("direction") == "down");
    CHECK(j.at("steps").at(1).at("direction") == "up");
    CHECK(j.at("steps").at(1).at("statements").at(1).at("line") == 3);
  }
  CHECK(target.snapshot() == before);
  CHECK(query("SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() AND "
                 "tablename = 'a'")[0][0] == "1");

  target.exec("UPDATE schema_migrations SET dirty = true");
  r = dbstep({"migrate", "--dry-run"});
  CHECK(r.code == 1);
  CHECK(contains(r.err, "dirty at version 1"));
}
