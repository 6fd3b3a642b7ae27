// End-to-end: --json for the run commands (migrate, rollback, goto, redo), force and drop, and
// their errors: one JSON document on stdout, parsed here with nlohmann-json as a script would,
// with the exit codes of the same commands without --json.

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
using nlohmann::json;

namespace {

// The one JSON document a --json command printed on stdout (fails the test if there is not one).
json parse(const RunResult& r) {
  json j = json::parse(r.out, nullptr, /*allow_exceptions=*/false);
  REQUIRE_MESSAGE(!j.is_discarded(), "not one JSON document: " << r.out << r.err);
  return j;
}

void write_migrations(const std::filesystem::path& dir) {
  write_file(dir / "1_a.up.sql", "CREATE TABLE a (id INTEGER);\n");
  write_file(dir / "1_a.down.sql", "DROP TABLE a;\n");
  write_file(dir / "2_b.up.sql", "CREATE TABLE b (id INTEGER);\n");
  write_file(dir / "2_b.down.sql", "DROP TABLE b;\n");
  write_file(dir / "3_broken.up.sql",
             "CREATE TABLE c (id INTEGER);\n-- the next one fails\nINSERT INTO nowhere VALUES (1);\n");
}

}  // namespace

TEST_CASE("e2e cli run: --json documents of migrate, rollback, goto, redo, force, drop on SQLite") {
  TempDir tmp;
  const auto dir = tmp / "migrations";
  write_migrations(dir);
  const auto db_file = tmp / "app.db";
  auto dbstep = [&](std::vector<std::string> args) {
    std::vector<std::string> all = {"-s", dir.string(), "-d", "sqlite://" + db_file.string()};
    all.insert(all.end(), args.begin(), args.end());
    return run_dbstep(all, tmp.path());
  };

  // A run that fails part way: the steps before the failure, and the error with its place.
  RunResult r = dbstep({"migrate", "--json"});
  CHECK(r.code == 1);
  CHECK(contains(r.err, "error: migration 3"));  // people's line still on stderr
  json j = parse(r);
  CHECK(j.at("command") == "migrate");
  CHECK(j.at("ok") == false);
  CHECK(j.at("dry_run") == false);
  CHECK(j.at("from").is_null());
  CHECK(j.at("to") == 2);
  REQUIRE(j.at("steps").size() == 2);
  CHECK(j.at("steps").at(0).at("version") == 1);
  CHECK(j.at("steps").at(0).at("identifier") == "a");
  CHECK(j.at("steps").at(0).at("file") == "1_a.up.sql");
  CHECK(j.at("steps").at(0).at("direction") == "up");
  CHECK(j.at("steps").at(0).at("duration_ms").is_number());
  const json& e = j.at("error");
  CHECK(e.at("code") == "migration_failed");
  CHECK(e.at("file") == "3_broken.up.sql");
  CHECK(e.at("line") == 3);
  CHECK(e.at("column") == 1);  // the statement's start: SQLite names no token here
  CHECK(e.at("version") == 3);
  CHECK(e.at("sqlstate") == "1");  // SQLite's extended result code: SQLITE_ERROR
  CHECK(contains(e.at("detail").get<std::string>(), "no such table: nowhere"));
  CHECK(contains(e.at("statement").get<std::string>(), "INSERT INTO nowhere"));

  std::filesystem::remove(dir / "3_broken.up.sql");
  r = dbstep({"migrate", "--json"});
  CHECK(r.code == 0);
  j = parse(r);
  CHECK(j.at("ok") == true);
  CHECK(j.at("from") == 2);
  CHECK(j.at("to") == 2);
  CHECK(j.at("steps").empty());
  CHECK(j.at("error").is_null());

  r = dbstep({"rollback", "1", "--json"});
  CHECK(r.code == 0);
  j = parse(r);
  CHECK(j.at("command") == "rollback");
  REQUIRE(j.at("steps").size() == 1);
  CHECK(j.at("steps").at(0).at("direction") == "down");
  CHECK(j.at("steps").at(0).at("file") == "2_b.down.sql");
  CHECK(j.at("steps").at(0).at("target") == 1);
  CHECK(j.at("to") == 1);

  r = dbstep({"goto", "2", "--json"});
  CHECK(r.code == 0);
  j = parse(r);
  CHECK(j.at("command") == "goto");
  CHECK(j.at("to") == 2);

  r = dbstep({"redo", "--json"});
  CHECK(r.code == 0);
  j = parse(r);
  CHECK(j.at("command") == "redo");
  REQUIRE(j.at("steps").size() == 2);
  CHECK(j.at("steps").at(0).at("direction") == "down");
  CHECK(j.at("steps").at(1).at("direction") == "up");

  r = dbstep({"migrate", "5", "--json"});
  CHECK(r.code == 4);  // unchanged by --json
  CHECK(parse(r).at("short_by") == 5);

  r = dbstep({"force", "1", "--json"});
  CHECK(r.code == 0);
  j = parse(r);
  CHECK(j == json::parse(R"({"command": "force", "ok": true, "version": 1, "dirty": false,
                             "error": null})"));

  r = dbstep({"drop", "--json"});
  CHECK(r.code == 2);  // would ask: --yes is needed
  CHECK(parse(r).at("error").at("code") == "usage");
  r = dbstep({"drop", "--yes", "--json"});
  CHECK(r.code == 0);
  j = parse(r);
  CHECK(j.at("command") == "drop");
  CHECK(j.at("database") == "SQLite database " + db_file.string());

  // Errors before any run: usage, a bad URL, a missing source.
  r = dbstep({"migrate", "many", "--json"});
  CHECK(r.code == 2);
  CHECK(parse(r).at("error").at("code") == "usage");
  r = run_dbstep({"-d", "nope://x", "-s", dir.string(), "migrate", "--json"}, tmp.path());
  CHECK(r.code == 1);
  CHECK(parse(r).at("error").at("code") == "unknown_scheme");
  r = run_dbstep({"-d", "sqlite://" + db_file.string(), "-s", (tmp / "missing").string(),
                  "rollback", "1", "--json"},
                 tmp.path());
  CHECK(r.code == 1);
  CHECK(parse(r).at("error").at("code") == "source_unavailable");
  r = dbstep({"force", "x", "--json"});
  CHECK(r.code == 2);
  CHECK(parse(r).at("error").at("code") == "usage");
}

TEST_CASE("e2e cli run: --json of a failing run on PostgreSQL carries the SQLSTATE") {
  TempDir tmp;
  const auto dir = tmp / "migrations";
  write_migrations(dir);
  PostgresTarget target;
  RunResult r = run_dbstep({"-s", dir.string(), "-d", target.url(""), "migrate", "--json"},
                           tmp.path());
  CHECK(r.code == 1);
  json j = parse(r);
  CHECK(j.at("ok") == false);
  CHECK(j.at("steps").size() == 2);
  const json& e = j.at("error");
  CHECK(e.at("code") == "migration_failed");
  CHECK(e.at("file") == "3_broken.up.sql");
  CHECK(e.at("line") == 3);
  CHECK(e.at("sqlstate") == "42P01");
  CHECK(contains(e.at("detail").get<std::string>(), "nowhere"));
}
