// End-to-end: errors that name the offending thing (issue 9, defect 7). Each case once reported
// something else: the folder instead of a broken link in it, a version instead of an empty
// folder, nothing at all for `file://`, and a silent death by SIGXFSZ under a file-size limit.

#include <doctest/doctest.h>

#include <SQLiteCpp/SQLiteCpp.h>
#include <fmt/format.h>

#include <sys/wait.h>

#include <cstdlib>
#include <string>

#include "tests/e2e/run.hpp"
#include "tests/support.hpp"

using namespace dbstep::testing;

namespace {

// Two migrations that make tables a and b.
void write_two(const std::filesystem::path& dir) {
  write_file(dir / "1_a.up.sql", "CREATE TABLE a (i int);\n");
  write_file(dir / "1_a.down.sql", "DROP TABLE a;\n");
  write_file(dir / "2_b.up.sql", "CREATE TABLE b (i int);\n");
  write_file(dir / "2_b.down.sql", "DROP TABLE b;\n");
}

}  // namespace

TEST_CASE("e2e: a broken symbolic link named like a migration is named, with what is wrong") {
  TempDir tmp;
  const std::string db = "sqlite://" + (tmp / "x.db").string();
  struct Case {
    const char* target;
    const char* says;
  };
  for (const Case& c : {Case{"nowhere", "is a dangling symbolic link (-> nowhere)"},
                        Case{"1_x.up.sql", "is a symbolic link loop"}}) {
    CAPTURE(c.target);
    const auto dir = tmp / (std::string("m-") + c.target);
    write_two(dir);
    std::filesystem::create_symlink(c.target, dir / "1_x.up.sql");
    auto r = run_dbstep({"-d", db, "-s", dir.string(), "migrate", "all"}, tmp.path());
    CAPTURE(r.err);
    CHECK(r.code == 1);
    CHECK(contains(r.err, "migration file " + (dir / "1_x.up.sql").string() + " " + c.says));
    CHECK_FALSE(contains(r.err, "No such file or directory"));
    CHECK_FALSE(contains(r.err, "cannot read migration folder"));
  }
  CHECK_FALSE(std::filesystem::exists(tmp / "x.db"));
}

TEST_CASE("e2e: an empty folder against a database at a version says the folder is empty") {
  TempDir tmp;
  const std::string db = "sqlite://" + (tmp / "x.db").string();
  write_two(tmp / "m");
  REQUIRE(run_dbstep({"-d", db, "-s", (tmp / "m").string(), "migrate", "all"}, tmp.path()).code == 0);
  std::filesystem::create_directories(tmp / "empty");
  const std::string before = read_file(tmp / "x.db");
  for (const auto& command : std::vector<std::vector<std::string>>{
           {"migrate", "all"}, {"rollback", "1"}, {"goto", "1"}}) {
    std::vector<std::string> args = {"-d", db, "-s", (tmp / "empty").string()};
    args.insert(args.end(), command.begin(), command.end());
    auto r = run_dbstep(args, tmp.path());
    CAPTURE(command[0]);
    CAPTURE(r.err);
    CHECK(r.code == 1);
    CHECK(contains(r.err, "no migrations found in folder " + (tmp / "empty").string()));
    CHECK(contains(r.err, "1_create_users.up.sql"));
    CHECK_FALSE(contains(r.err, "no migration found for version"));
  }
  CHECK(read_file(tmp / "x.db") == before);
}

TEST_CASE("e2e: -s file:// with no path is an error saying how to write it") {
  TempDir tmp;
  write_two(tmp.path());  // the current folder holds migrations: file:// must not quietly use them
  for (const char* source : {"file://", "file://?x-a=1"}) {
    CAPTURE(source);
    auto r = run_dbstep({"-d", "sqlite://x.db", "-s", source, "migrate", "all"}, tmp.path());
    CAPTURE(r.err);
    CHECK(r.code == 1);
    CHECK(contains(r.err, "names no folder"));
    CHECK(contains(r.err, "file://./migrations"));
    CHECK(contains(r.err, "file://."));
    CHECK(r.out.empty());
  }
  CHECK_FALSE(std::filesystem::exists(tmp / "x.db"));
  auto r = run_dbstep({"-d", "sqlite://x.db", "-s", "file://.", "migrate", "all"}, tmp.path());
  CHECK(r.code == 0);
}

TEST_CASE("e2e: a file-size limit (ulimit -f) is a reported write error, not a silent SIGXFSZ") {
  TempDir tmp;
  auto dir = tmp / "m";
  write_file(dir / "1_a.up.sql", "CREATE TABLE a (i int);\n");
  // About 200 kB of rows: far past the limit below, whether it hits the journal or the database.
  std::string big = "CREATE TABLE big (t text);\n";
  for (int i = 0; i < 200; ++i) big += fmt::format("INSERT INTO big VALUES ('{:0>1000}');\n", i);
  write_file(dir / "2_big.up.sql", big);
  const std::string db = "sqlite://" + (tmp / "x.db").string();
  REQUIRE(run_dbstep({"-d", db, "-s", dir.string(), "migrate", "1"}, tmp.path()).code == 0);
  const std::string before = read_file(tmp / "x.db");
  REQUIRE(before.size() < 80 * 512);

  // std::system runs sh, whose ulimit -f counts 512-byte blocks: 80 (40 kB) leaves room for the
  // database as it is (version and history tables), not for the migration.
  const std::string out = (tmp / "out").string(), err = (tmp / "err").string();
  const std::string command =
      fmt::format("cd '{}' && ulimit -f 80 && exec '{}' -d '{}' -s '{}' migrate all >'{}' 2>'{}'",
                  tmp.str(), DBSTEP_BINARY, db, dir.string(), out, err);
  int status = std::system(command.c_str());
  REQUIRE(status != -1);
  const std::string stderr_text = read_file(err);
  CAPTURE(stderr_text);
  CHECK(WIFEXITED(status));  // not killed by SIGXFSZ (exit 153 in a shell)
  CHECK(WEXITSTATUS(status) == 1);
  const bool io_error = contains(stderr_text, "disk I/O error") ||
                        contains(stderr_text, "database or disk is full");
  CHECK(io_error);
  CHECK(contains(stderr_text, "x.db"));
  CHECK(read_file(tmp / "x.db") == before);
  CHECK_FALSE(std::filesystem::exists(tmp / "x.db-journal"));
  SQLite::Database d((tmp / "x.db").string());
  CHECK(d.execAndGet("SELECT version FROM schema_migrations").getInt64() == 1);
}
