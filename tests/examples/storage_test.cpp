// examples/storage: Storage::open() migrates on open, backs up a database that holds data,
// reports a failing migration with its backup, and works with many processes at once.

#include <doctest/doctest.h>

#include <SQLiteCpp/SQLiteCpp.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "examples/storage/storage.hpp"
#include "sources/dir/dir_source.hpp"
#include "tests/support.hpp"

using dbstep::testing::TempDir;
using dbstep::testing::write_file;

namespace {

const std::filesystem::path kMigrations = DBSTEP_EXAMPLE_MIGRATIONS_DIR;

std::vector<std::filesystem::path> backups_of(const std::filesystem::path& db) {
  std::vector<std::filesystem::path> out;
  for (const auto& e : std::filesystem::directory_iterator(db.parent_path())) {
    if (e.path().filename().string().rfind(db.filename().string() + ".backup-v", 0) == 0) {
      out.push_back(e.path());
    }
  }
  return out;
}

storage::Options quiet(std::vector<std::string>* log = nullptr) {
  storage::Options o;
  o.log = [log](const std::string& line) {
    if (log) log->push_back(line);
  };
  return o;
}

// A copy of the example's migrations with only the first `n` versions.
std::filesystem::path first_migrations(const TempDir& tmp, int n) {
  auto dir = tmp / "first";
  std::filesystem::create_directories(dir);
  for (const auto& e : std::filesystem::directory_iterator(kMigrations)) {
    if (std::stoi(e.path().filename().string()) <= n) {
      std::filesystem::copy_file(e.path(), dir / e.path().filename());
    }
  }
  return dir;
}

storage::Options from_folder(const std::filesystem::path& dir, std::vector<std::string>* log = nullptr) {
  auto o = quiet(log);
  o.migrations = [dir] {
    return dbstep::sources::open_directory(dbstep::Url::parse("file://" + dir.string()));
  };
  return o;
}

}  // namespace

TEST_CASE("storage: a new database is migrated on open, with no backup") {
  TempDir tmp;
  std::vector<std::string> log;
  auto store = storage::Storage::open(tmp / "notes.db", quiet(&log));
  CHECK(store.migration().ok());
  CHECK(store.migration().from == std::nullopt);
  CHECK(store.migration().to == dbstep::OptVersion{4});
  CHECK(store.migration().steps.size() == 4);
  CHECK_FALSE(store.backup());
  CHECK(backups_of(tmp / "notes.db").empty());
  CHECK(log.size() == 4);
  store.add_note("a", "b", true);
  CHECK(store.notes().size() == 1);
  CHECK(store.notes()[0].notebook == "Inbox");

  auto again = storage::Storage::open(tmp / "notes.db", quiet());
  CHECK(again.migration().steps.empty());
  CHECK(again.migration().to == dbstep::OptVersion{4});
  CHECK_FALSE(again.backup());
}

TEST_CASE("storage: a database with data is backed up before migrating") {
  TempDir tmp;
  auto db = tmp / "notes.db";
  {
    auto old = storage::Storage::open(db, from_folder(first_migrations(tmp, 2)));
    CHECK(old.migration().to == dbstep::OptVersion{2});
    old.db().exec("INSERT INTO notebooks (id, name) VALUES (7, 'Work');"
                  "INSERT INTO notes (notebook_id, title) VALUES (7, 'from version 2')");
  }
  std::vector<std::string> log;
  auto store = storage::Storage::open(db, quiet(&log));
  CHECK(store.migration().from == dbstep::OptVersion{2});
  CHECK(store.migration().to == dbstep::OptVersion{4});
  REQUIRE(store.backup());
  auto name = store.backup()->filename().string();
  CHECK(name.rfind("notes.db.backup-v2-", 0) == 0);
  CHECK(name.size() == std::string("notes.db.backup-v2-YYYYMMDD-HHMMSS").size());
  CHECK(log.front().find("backed up") != std::string::npos);
  CHECK(log.front().find(store.backup()->string()) != std::string::npos);
  // The backup opens and holds the data and version from before the migration.
  SQLite::Database copy(store.backup()->string());
  CHECK(copy.execAndGet("SELECT title FROM notes").getString() == "from version 2");
  CHECK(copy.execAndGet("SELECT version FROM schema_migrations").getInt() == 2);
  CHECK(copy.execAndGet("SELECT COUNT(*) FROM sqlite_master WHERE name = 'notes' AND sql LIKE '%pinned%'").getInt() == 0);
  CHECK(store.db().execAndGet("SELECT COUNT(*) FROM notes").getInt() == 1);

  // Backups can be turned off.
  TempDir tmp2;
  {
    auto old = storage::Storage::open(tmp2 / "n.db", from_folder(first_migrations(tmp2, 2)));
    old.db().exec("INSERT INTO notebooks (id, name) VALUES (7, 'Work')");
  }
  auto o = quiet();
  o.backup = false;
  auto no_backup = storage::Storage::open(tmp2 / "n.db", o);
  CHECK_FALSE(no_backup.backup());
  CHECK(backups_of(tmp2 / "n.db").empty());
}

TEST_CASE("storage: a failing migration says which, why and where the backup is") {
  TempDir tmp;
  auto db = tmp / "notes.db";
  auto dir = first_migrations(tmp, 2);
  {
    auto old = storage::Storage::open(db, from_folder(dir));
    old.db().exec("INSERT INTO notebooks (id, name) VALUES (1, 'Taken')");  // 3 will collide
  }
  std::filesystem::copy(kMigrations, dir, std::filesystem::copy_options::overwrite_existing | std::filesystem::copy_options::recursive);
  try {
    storage::Storage::open(db, from_folder(dir));
    FAIL("expected storage::Error");
  } catch (const storage::Error& e) {
    std::string m = e.what();
    CHECK(m.find("migration 3 (3_seed_inbox.up.sql) failed at line 2") != std::string::npos);
    CHECK(m.find("UNIQUE constraint failed") != std::string::npos);
    CHECK(m.find("the database is still at version 2") != std::string::npos);
    REQUIRE(e.backup());
    CHECK(m.find(e.backup()->string()) != std::string::npos);
    CHECK(std::filesystem::exists(*e.backup()));
  }
  SQLite::Database check(db.string());
  CHECK(check.execAndGet("SELECT version FROM schema_migrations").getInt() == 2);
  CHECK(check.execAndGet("SELECT dirty FROM schema_migrations").getInt() == 0);
}

TEST_CASE("storage: 8 processes opening one new database at once each get it ready") {
  TempDir tmp;
  auto db = tmp / "shared.db";
  std::vector<pid_t> pids;
  for (int i = 0; i < 8; ++i) {
    pid_t pid = ::fork();
    if (pid == 0) {
      int null = ::open("/dev/null", O_WRONLY);
      ::dup2(null, 1);
      ::dup2(null, 2);
      // Each process opens (migrating if it wins the lock) and then writes a note, so a process
      // that loses the race finds data, but nothing pending: it must not make a backup.
      ::execl(STORAGE_DEMO_BINARY, STORAGE_DEMO_BINARY, db.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    pids.push_back(pid);
  }
  for (pid_t pid : pids) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
  }
  SQLite::Database check(db.string());
  CHECK(check.execAndGet("SELECT version FROM schema_migrations").getInt() == 4);
  CHECK(check.execAndGet("SELECT dirty FROM schema_migrations").getInt() == 0);
  CHECK(check.execAndGet("SELECT COUNT(*) FROM notebooks").getInt() == 1);  // seeded once
  CHECK(check.execAndGet("SELECT COUNT(*) FROM notes").getInt() == 8);  // every process wrote
  CHECK(backups_of(db).empty());
}
