// End-to-end: `dbstep redo` on SQLite and PostgreSQL: the last migration rolled back and applied
// again, each step in its own transaction or both in one with --single-transaction; nothing
// applied, a dirty database and a stray argument refused with the database unchanged.

#include <doctest/doctest.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>
#include <vector>

#include "tests/e2e/run.hpp"
#include "tests/e2e/target.hpp"
#include "tests/support.hpp"

using namespace dbstep::testing;

namespace {

void write_migrations(const std::filesystem::path& dir) {
  write_file(dir / "1_a.up.sql", "CREATE TABLE a (id INTEGER);\n");
  write_file(dir / "1_a.down.sql", "DROP TABLE a;\n");
  write_file(dir / "2_b.up.sql", "CREATE TABLE b (id INTEGER);\nINSERT INTO b VALUES (1);\n");
  write_file(dir / "2_b.down.sql", "DROP TABLE b;\n");
}

void check_redo(DriverKind kind) {
  TempDir tmp;
  const auto dir = tmp / "migrations";
  write_migrations(dir);
  auto target = make_target(kind, tmp.path(), "redo");
  const std::string db = target->url();
  auto dbstep = [&](std::vector<std::string> args) {
    std::vector<std::string> all = {"-s", dir.string(), "-d", db};
    all.insert(all.end(), args.begin(), args.end());
    return run_dbstep(all, tmp.path());
  };

  // Nothing applied: nothing to redo, and nothing is created.
  RunResult r = dbstep({"redo"});
  CHECK(r.code == 1);
  CHECK(contains(r.err, "nothing to redo"));
  CHECK(target->snapshot() == Snapshot{});
  r = dbstep({"redo", "--json"});
  CHECK(r.code == 1);
  {
    const auto j = nlohmann::json::parse(r.out);
    CHECK(j.at("command") == "redo");
    CHECK(j.at("ok") == false);
    CHECK(j.at("error").at("code") == "invalid_argument");
  }

  REQUIRE(dbstep({"migrate"}).code == 0);
  target->exec("INSERT INTO b VALUES (2)");  // gone once b is made again

  r = dbstep({"redo"});
  INFO(r.out << r.err);
  CHECK(r.code == 0);
  CHECK(contains(r.out, "Redoing migration 2"));
  CHECK(contains(r.out, "Rolled back migration 2: b"));
  CHECK(contains(r.out, "Applied migration 2: b"));
  Snapshot s = target->snapshot();
  CHECK(s.version == 2);
  CHECK_FALSE(s.dirty);
  CHECK(s.tables["b"] == std::vector<std::string>{"1"});

  // The up file now fails. With --single-transaction the rollback goes too: nothing changes.
  target->exec("INSERT INTO b VALUES (2)");
  const Snapshot before = target->snapshot();
  write_file(dir / "2_b.up.sql", "CREATE TABLE b (id INTEGER);\nINSERT INTO missing VALUES (1);\n");
  r = dbstep({"redo", "--single-transaction"});
  CHECK(r.code == 1);
  CHECK(contains(r.err, "2_b.up.sql"));
  CHECK(target->snapshot() == before);

  // Each in its own transaction: the rollback stays, the failed up leaves version 1, clean.
  r = dbstep({"redo"});
  CHECK(r.code == 1);
  CHECK(contains(r.out, "Rolled back 1 migration(s) before the failure"));
  CHECK(contains(r.err, "still at version 1"));
  s = target->snapshot();
  CHECK(s.version == 1);
  CHECK_FALSE(s.dirty);
  CHECK(s.tables.count("b") == 0);

  // A dirty database is refused, unchanged.
  target->exec(kind == DriverKind::kSqlite ? "UPDATE schema_migrations SET dirty = 1"
                                           : "UPDATE schema_migrations SET dirty = true");
  const Snapshot dirty = target->snapshot();
  r = dbstep({"redo"});
  CHECK(r.code == 1);
  CHECK(contains(r.err, "dirty at version 1"));
  CHECK(target->snapshot() == dirty);

  // Usage.
  r = dbstep({"redo", "2"});
  CHECK(r.code == 2);
  CHECK(contains(r.err, "redo takes no argument"));
}

}  // namespace

TEST_CASE("e2e cli run: redo on SQLite") { check_redo(DriverKind::kSqlite); }

TEST_CASE("e2e cli run: redo on PostgreSQL") { check_redo(DriverKind::kPostgres); }
