// End-to-end (issue 11, item 8): --backup on SQLite copies the database with the online backup
// API before a run that changes it, under the run lock, and a failed copy stops the run with
// nothing applied; nothing is copied when there is nothing to do; PostgreSQL refuses the option.
// The library option (MigratorOptions::backup) is checked through dbstep::open().

#include <doctest/doctest.h>

#include <SQLiteCpp/SQLiteCpp.h>

#include <cstdlib>
#include <ctime>
#include <regex>
#include <string>
#include <vector>

#include "dbstep/dbstep.hpp"
#include "tests/e2e/cli_safe_support.hpp"
#include "tests/e2e/run.hpp"
#include "tests/e2e/target.hpp"
#include "tests/support.hpp"

using namespace dbstep::testing;

namespace {

std::vector<std::filesystem::path> backups_in(const std::filesystem::path& dir) {
  std::vector<std::filesystem::path> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().filename().string().find(".backup-v") != std::string::npos) out.push_back(e.path());
  }
  return out;
}

// A folder `m` with migrations 1..3 and app.db at version 1.
void setup_app(const TempDir& tmp) {
  write_table_migrations(tmp / "m", 3);
  REQUIRE(run_dbstep({"-s", "m", "-d", "app.db", "migrate", "1"}, tmp.path()).code == 0);
}

}  // namespace

TEST_CASE("backup: --backup copies the database before a run that changes it") {
  TempDir tmp;
  setup_app(tmp);
  auto r = run_dbstep({"-s", "m", "-d", "app.db", "--backup", "migrate", "1"}, tmp.path());
  CHECK(r.code == 0);
  auto copies = backups_in(tmp.path());
  REQUIRE(copies.size() == 1);
  const std::string name = copies[0].filename().string();
  CHECK(std::regex_match(name, std::regex(R"(app\.db\.backup-v1-\d{8}-\d{6})")));
  CHECK(contains(r.out, "Backed up the database to app.db.backup-v1-"));
  // The line comes after the plan and before the first migration.
  CHECK(r.out.find("Running 1 pending") < r.out.find("Backed up"));
  CHECK(r.out.find("Backed up") < r.out.find("Applied migration 2"));
  // The copy is the database as it was: version 1, t1 with its row, no t2.
  CHECK(sqlite_scalar(copies[0], "SELECT version FROM schema_migrations") == 1);
  CHECK(sqlite_scalar(copies[0], "SELECT x FROM t1") == 1);
  CHECK(sqlite_scalar(copies[0], "SELECT COUNT(*) FROM sqlite_master WHERE name = 't2'") == 0);
  CHECK(sqlite_scalar(tmp / "app.db", "SELECT version FROM schema_migrations") == 2);

  std::filesystem::remove(copies[0]);
  r = run_dbstep({"-s", "m", "-d", "app.db", "--backup", "migrate", "1"}, tmp.path());
  CHECK(r.code == 0);
  copies = backups_in(tmp.path());
  REQUIRE(copies.size() == 1);
  CHECK(copies[0].filename().string().rfind("app.db.backup-v2-", 0) == 0);
  std::filesystem::remove(copies[0]);
  // Nothing to do: nothing copied.
  r = run_dbstep({"-s", "m", "-d", "app.db", "-backup=true", "up"}, tmp.path());
  CHECK(r.code == 0);
  CHECK(contains(r.out, "up to date"));
  CHECK(backups_in(tmp.path()).empty());
  r = run_dbstep({"-s", "m", "-d", "app.db", "--backup", "up", "0"}, tmp.path());
  CHECK(backups_in(tmp.path()).empty());

  // Rolling back is a change too: the copy is at version 3.
  r = run_dbstep({"-s", "m", "-d", "app.db", "--backup", "rollback", "1"}, tmp.path());
  CHECK(r.code == 0);
  copies = backups_in(tmp.path());
  REQUIRE(copies.size() == 1);
  CHECK(copies[0].filename().string().rfind("app.db.backup-v3-", 0) == 0);
  CHECK(sqlite_scalar(copies[0], "SELECT x FROM t3") == 3);
  std::filesystem::remove(copies[0]);
  r = run_dbstep({"-s", "m", "-d", "app.db", "--backup", "goto", "3"}, tmp.path());
  CHECK(r.code == 0);
  CHECK(backups_in(tmp.path()).size() == 1);

  // --json: the run document names the copy.
  std::filesystem::remove(backups_in(tmp.path())[0]);
  r = run_dbstep({"-s", "m", "-d", "app.db", "--backup", "--json", "rollback", "1"}, tmp.path());
  CHECK(r.code == 0);
  REQUIRE(backups_in(tmp.path()).size() == 1);
  CHECK(contains(r.out, "\"backup\": \"app.db.backup-v3-"));
  CHECK_FALSE(contains(r.out, "Backed up"));
  r = run_dbstep({"-s", "m", "-d", "app.db", "--backup", "--json", "goto", "3"}, tmp.path());
  CHECK(r.code == 0);
  std::filesystem::remove(backups_in(tmp.path())[0]);
  std::filesystem::remove(backups_in(tmp.path())[0]);
  r = run_dbstep({"-s", "m", "-d", "app.db", "--json", "up"}, tmp.path());
  CHECK(contains(r.out, "\"backup\": null"));

  // A new database: nothing to copy, the migrations run.
  r = run_dbstep({"-s", "m", "-d", "new.db", "--backup", "up"}, tmp.path());
  CHECK(r.code == 0);
  CHECK(backups_in(tmp.path()).empty());
  CHECK(sqlite_scalar(tmp / "new.db", "SELECT version FROM schema_migrations") == 3);

  // Commands that change nothing do not take it.
  for (const char* command : {"version", "status", "validate", "create"}) {
    r = run_dbstep({"-s", "m", "-d", "app.db", "--backup", command}, tmp.path());
    CHECK(r.code == 2);
    CHECK(contains(r.err, "does not take --backup"));
  }
}

TEST_CASE("backup: a backup that fails stops the run before any migration") {
  TempDir tmp;
  setup_app(tmp);

  SUBCASE("a file of the backup's name exists") {
    // The name holds the time to the second: take the names of the next few seconds.
    std::vector<std::filesystem::path> taken;
    const std::time_t now = std::time(nullptr);
    for (int i = 0; i < 4; ++i) {
      const std::time_t t = now + i;
      std::tm tm{};
      ::gmtime_r(&t, &tm);
      char stamp[32];
      std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
      taken.push_back(tmp / (std::string("app.db.backup-v1-") + stamp));
      write_file(taken.back(), "someone else's file");
    }
    const auto before = folder_bytes(tmp.path());
    auto r = run_dbstep({"-s", "m", "-d", "app.db", "--backup", "up"}, tmp.path());
    CHECK(r.code == 1);
    CHECK(contains(r.err, "cannot back up SQLite database app.db to app.db.backup-v1-"));
    CHECK(contains(r.err, "File exists; no migration was run"));
    CHECK_FALSE(contains(r.out, "Applied"));
    CHECK(folder_bytes(tmp.path()) == before);  // the database and the other files untouched
  }

  SUBCASE("the folder cannot be written") {
    std::filesystem::permissions(tmp.path(), std::filesystem::perms::owner_read |
                                                 std::filesystem::perms::owner_exec |
                                                 std::filesystem::perms::others_read |
                                                 std::filesystem::perms::others_exec);
    const auto before = folder_bytes(tmp.path());
    // As root, run as nobody (who may still read and write app.db itself), so that the
    // folder's permissions apply.
    std::filesystem::permissions(tmp / "app.db", std::filesystem::perms::all);
    const auto before_db = read_file(tmp / "app.db");
    auto r = run_dbstep_limited({"-s", "m", "-d", "app.db", "--backup", "up"}, tmp.path(),
                                Limits{std::nullopt, true});
    std::filesystem::permissions(tmp.path(), std::filesystem::perms::owner_all);
    CHECK(r.code == 1);
    CHECK(contains(r.err, "cannot back up"));
    CHECK(contains(r.err, "Permission denied; no migration was run"));
    CHECK(read_file(tmp / "app.db") == before_db);
    CHECK(backups_in(tmp.path()).empty());
    (void)before;
  }

  SUBCASE("the disk is full (a file-size limit)") {
    const auto size = std::filesystem::file_size(tmp / "app.db");
    REQUIRE(size > 4096);
    const auto before = folder_bytes(tmp.path());
    auto r = run_dbstep_limited({"-s", "m", "-d", "app.db", "--backup", "up"}, tmp.path(),
                                Limits{4096, false});
    CHECK(r.code == 1);
    CHECK(contains(r.err, "cannot back up"));
    CHECK(contains(r.err, "no migration was run"));
    CHECK(folder_bytes(tmp.path()) == before);  // no partial copy left
    CHECK(backups_in(tmp.path()).empty());
  }
  CHECK(sqlite_scalar(tmp / "app.db", "SELECT version FROM schema_migrations") == 1);
}

TEST_CASE("backup: the library option copies under the lock and reports the path") {
  TempDir tmp;
  setup_app(tmp);
  struct Seen final : dbstep::Observer {
    std::vector<std::string> events;
    void on_plan(const dbstep::Plan&) override { events.push_back("plan"); }
    void on_backup(const std::string& path) override { events.push_back("backup " + path); }
    void on_step_started(const dbstep::PlannedStep&) override { events.push_back("step"); }
  } seen;
  dbstep::MigratorOptions options;
  options.backup = true;
  options.observer = &seen;
  const std::string db = (tmp / "app.db").string();
  auto m = dbstep::open("sqlite://" + db, (tmp / "m").string(), options);
  dbstep::Result r = m.up();
  CHECK(r.ok());
  REQUIRE(r.backup);
  CHECK(r.backup->rfind(db + ".backup-v1-", 0) == 0);
  CHECK(std::filesystem::exists(*r.backup));
  REQUIRE(seen.events.size() == 4);
  CHECK(seen.events[0] == "plan");
  CHECK(seen.events[1] == "backup " + *r.backup);
  CHECK(seen.events[2] == "step");
  // Up to date: no copy.
  r = m.up();
  CHECK(r.ok());
  CHECK_FALSE(r.backup);
}

TEST_CASE("backup: PostgreSQL refuses --backup and names pg_dump, changing nothing") {
  TempDir tmp;
  write_table_migrations(tmp / "m", 2);
  PostgresTarget db;
  const auto before = db.snapshot();
  auto r = run_dbstep({"-s", "m", "-d", db.url(""), "--backup", "up"}, tmp.path());
  CHECK(r.code == 1);
  CHECK(contains(r.err, "--backup is not available for postgres://"));
  CHECK(contains(r.err, "pg_dump"));
  CHECK(db.snapshot() == before);
  CHECK_FALSE(db.snapshot().version);
  dbstep::MigratorOptions options;
  options.backup = true;
  CHECK_THROWS_WITH_AS(dbstep::open(db.url(""), (tmp / "m").string(), options),
                       doctest::Contains("pg_dump"), dbstep::Error);
}
