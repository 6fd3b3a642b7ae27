// End-to-end: the progress line of a long run on a terminal (a pseudo-terminal made by
// script(1)), the line per migration everywhere else (a pipe, a file), --quiet, and no colour or
// escape sequence in either (NO_COLOR has nothing to turn off).

#include <doctest/doctest.h>

#include <fmt/format.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "tests/e2e/run.hpp"
#include "tests/support.hpp"

using namespace dbstep::testing;

namespace {

void write_migrations(const std::filesystem::path& dir, int count) {
  for (int i = 1; i <= count; ++i) {
    write_file(dir / fmt::format("{}_t{}.up.sql", i, i), fmt::format("CREATE TABLE t{} (x);\n", i));
    write_file(dir / fmt::format("{}_t{}.down.sql", i, i), fmt::format("DROP TABLE t{};\n", i));
  }
}

// Runs dbstep with `args` on a pseudo-terminal (script -qec), in `cwd`; returns what the
// terminal showed (stdout and stderr, as bytes) and sets `code` to the exit code.
std::string run_on_terminal(const std::string& args, const std::filesystem::path& cwd,
                            int& code, const std::string& env = "") {
  const std::string inner = fmt::format("cd '{}' && {} '{}' {}", cwd.string(), env, DBSTEP_BINARY, args);
  const std::string command = fmt::format("script -qec \"{}\" /dev/null", inner);
  FILE* p = ::popen(command.c_str(), "r");
  REQUIRE(p != nullptr);
  std::string out;
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int status = ::pclose(p);
  code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return out;
}

}  // namespace

TEST_CASE("e2e cli run: a long run shows one progress line on a terminal, a line per step elsewhere") {
  TempDir tmp;
  const auto dir = tmp / "migrations";
  write_migrations(dir, 5);
  const std::string args = fmt::format("-s '{}' -d 'sqlite://{}'", dir.string(),
                                       (tmp / "tty.db").string());
  int code = -1;
  std::string shown = run_on_terminal(args + " migrate", tmp.path(), code);
  INFO(shown);
  CHECK(code == 0);
  CHECK(contains(shown, "Running 5 pending migration(s) from version none to 5"));
  CHECK(contains(shown, "\r[1/5] 1_t1 ..."));
  CHECK(contains(shown, "\r[5/5] 5_t5 ... "));
  CHECK(contains(shown, " ms\r\n"));  // the finished line ends before the summary
  CHECK(contains(shown, "Database is now at version 5 (5 migration(s) in"));
  CHECK_FALSE(contains(shown, "Applied migration"));
  CHECK_FALSE(contains(shown, "\x1b"));  // no colour, no escape sequence

  // NO_COLOR changes nothing: there is no colour to turn off.
  shown = run_on_terminal(args + " rollback all --yes", tmp.path(), code, "NO_COLOR=1");
  CHECK(code == 0);
  CHECK(contains(shown, "\r[5/5] 1_t1 ..."));
  CHECK_FALSE(contains(shown, "\x1b"));

  // Three migrations or fewer: a line each, as in a pipe.
  shown = run_on_terminal(args + " migrate 3", tmp.path(), code);
  CHECK(code == 0);
  CHECK(contains(shown, "Applied migration 1: t1"));
  CHECK_FALSE(contains(shown, "[1/3]"));

  // --quiet on a terminal: nothing but errors.
  shown = run_on_terminal(args + " --quiet migrate", tmp.path(), code);
  CHECK(code == 0);
  CHECK(shown.empty());
}

TEST_CASE("e2e cli run: no progress line in a pipe or a file, and --quiet prints errors only") {
  TempDir tmp;
  const auto dir = tmp / "migrations";
  write_migrations(dir, 5);
  const std::vector<std::string> base = {"-s", dir.string(), "-d",
                                         "sqlite://" + (tmp / "pipe.db").string()};
  auto dbstep = [&](std::vector<std::string> args) {
    std::vector<std::string> all = base;
    all.insert(all.end(), args.begin(), args.end());
    return run_dbstep(all, tmp.path());
  };
  RunResult r = dbstep({"migrate"});
  CHECK(r.code == 0);
  CHECK(contains(r.out, "Applied migration 1: t1"));
  CHECK(contains(r.out, "Applied migration 5: t5"));
  CHECK_FALSE(contains(r.out, "\r"));
  CHECK_FALSE(contains(r.out, "[1/5]"));

  r = dbstep({"rollback", "2", "--quiet"});
  CHECK(r.code == 0);
  CHECK(r.out.empty());
  CHECK(r.err.empty());

  write_file(dir / "6_bad.up.sql", "CREATE TABLE t1 (x);\n");  // t1 exists
  r = dbstep({"migrate", "-q"});
  CHECK(r.code == 1);
  CHECK(r.out.empty());
  CHECK(contains(r.err, "error: migration 6 (6_bad.up.sql) failed at line 1"));

  // A usage error under --quiet is still reported.
  r = dbstep({"--quiet", "migrate", "x"});
  CHECK(r.code == 2);
  CHECK(contains(r.err, "dbstep:"));
}
