#pragma once
// Many `dbstep migrate all` processes racing on one new database (concurrency_test.cpp, and
// pgbouncer_test.cpp through the pooler): migrations that each fail if they run twice, and the
// runner that starts the processes at once and checks that between them they applied each
// migration exactly once.

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "tests/e2e/run.hpp"
#include "tests/support.hpp"

namespace dbstep::testing {

// Migrations 1..`count` in `dir` (no downs): 1 makes table `applied` (n PRIMARY KEY) and records
// 1; each other V makes table c_V holding V and records V in `applied`, so that any migration
// run twice fails. Migration `no_transaction` runs outside a transaction (the dirty protocol).
inline void write_once_only_migrations(const std::filesystem::path& dir, int count,
                                       int no_transaction) {
  write_file(dir / "01_applied.up.sql",
             "CREATE TABLE applied (n int PRIMARY KEY);\nINSERT INTO applied VALUES (1);\n");
  for (int v = 2; v <= count; ++v) {
    write_file(dir / fmt::format("{:02}_c{}.up.sql", v, v),
               fmt::format("{}CREATE TABLE c_{} (x int);\nINSERT INTO c_{} VALUES ({});\n"
                           "INSERT INTO applied VALUES ({});\n",
                           v == no_transaction ? "-- dbstep:no-transaction\n" : "", v, v, v, v));
  }
}

// Starts `processes` `dbstep -d url -s dir migrate all` in `cwd` before waiting for any, then
// checks that every one exited 0 with nothing on stderr and that, going by their "Applied
// migration V" lines, they applied each of the `count` migrations exactly once between them.
inline void race_migrate_all(int processes, const std::string& url,
                             const std::filesystem::path& dir, const std::filesystem::path& cwd,
                             int count) {
  std::vector<std::unique_ptr<Process>> procs;
  for (int i = 0; i < processes; ++i) {
    procs.push_back(std::make_unique<Process>(
        std::vector<std::string>{"-d", url, "-s", dir.string(), "migrate", "all"}, cwd));
  }
  std::map<int, int> applied;  // version -> how many processes say they applied it
  for (auto& p : procs) {
    auto r = p->wait();
    CHECK_MESSAGE(r.code == 0, r.err);
    CHECK(r.err.empty());
    const std::string mark = "Applied migration ";
    for (auto at = r.out.find(mark); at != std::string::npos; at = r.out.find(mark, at + 1)) {
      ++applied[std::stoi(r.out.substr(at + mark.size()))];
    }
  }
  CHECK(applied.size() == static_cast<std::size_t>(count));
  for (const auto& [version, times] : applied) {
    CAPTURE(version);
    CHECK(times == 1);
  }
}

}  // namespace dbstep::testing
