#pragma once
// Shared by the schema snapshot and verify tests of both drivers
// (schema_snapshot_test.cpp, schema_snapshot_postgres_test.cpp): databases to build schemas in,
// and the verify fixtures under tests/data/verify/<dialect>/ with their expectations.

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <cstdlib>
#include <filesystem>
#include <functional>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/schema_snapshot.hpp"
#include "core/verify.hpp"
#include "dbstep/dbstep.hpp"
#include "tests/postgres_server.hpp"
#include "tests/support.hpp"

namespace dbstep::testing::schema {

using namespace dbstep;
using dbstep::testing::pg_exec;
using dbstep::testing::postgres_server_url;
using dbstep::testing::TempDir;
using dbstep::testing::write_file;

inline const std::string kData = DBSTEP_TEST_DATA_DIR;

inline Registry builtin() {
  Registry r;
  register_builtin(r);
  return r;
}

// A database to test on: a SQLite file in a temp folder, or a new PostgreSQL database made
// (and dropped) through the driver's own scratch-database support.
struct Db {
  std::string url;
  std::function<void(const std::string&)> exec;
  std::function<void()> cleanup;
  ~Db() {
    if (cleanup) cleanup();
  }
};

inline std::unique_ptr<Db> sqlite_db(const TempDir& dir, const std::string& name) {
  auto db = std::make_unique<Db>();
  const std::string path = (dir / (name + ".db")).string();
  db->url = "sqlite://" + path;
  db->exec = [url = db->url](const std::string& sql) {
    auto driver = builtin().open_driver(url);
    Step step;
    step.version = 1;
    step.target = 1;
    step.identifier = "t";
    step.file = "1_t.up.sql";
    step.sql = sql;
    REQUIRE(driver->apply(step, driver->state()));
    driver->set_state({});  // only the schema change stays
  };
  return db;
}

inline std::unique_ptr<Db> pg_db() {
  auto db = std::make_unique<Db>();
  std::random_device rd;
  const std::string name = fmt::format("snap_{:08x}", rd());
  std::shared_ptr<Driver> origin = builtin().open_driver(postgres_server_url());
  db->url = origin->create_scratch_database(name);
  db->exec = [url = db->url](const std::string& sql) { pg_exec(url, sql); };
  db->cleanup = [origin, name] { origin->drop_scratch_database(name); };
  return db;
}

inline std::string snapshot(const Db& db) {
  return builtin().open_driver(db.url)->schema_snapshot();
}

inline VerifyReport verify_fixture(const std::string& dialect, const std::string& fixture,
                            const std::string& database_url) {
  return verify(builtin(), database_url, kData + "/verify/" + dialect + "/" + fixture);
}

inline std::string first_problem(const VerifyReport& r) {
  return r.problems.empty() ? std::string()
                            : r.problems.front().message + "\n" + r.problems.front().difference;
}

// Whether the diff has a line starting with `sign` that mentions `word`.
inline bool changed_line(const std::string& diff, char sign, const std::string& word) {
  std::size_t at = 0;
  while (at < diff.size()) {
    std::size_t end = diff.find('\n', at);
    if (end == std::string::npos) end = diff.size();
    const std::string line = diff.substr(at, end - at);
    if (!line.empty() && line[0] == sign && line.rfind("---", 0) != 0 &&
        line.rfind("+++", 0) != 0 && line.find(word) != std::string::npos) {
      return true;
    }
    at = end + 1;
  }
  return false;
}

inline bool has_problem(const VerifyReport& r, Version v, VerifyProblemKind kind) {
  for (const auto& p : r.problems) {
    if (p.version == v && p.kind == kind) return true;
  }
  return false;
}

// The fixtures under tests/data/verify/<dialect>/, each made to fail one way, and one that
// passes: the same expectations on both databases.
inline void check_fixtures(const std::string& dialect, const std::string& database_url) {
  SUBCASE("a set whose downs all restore the schema passes") {
    auto r = verify_fixture(dialect, "pass", database_url);
    INFO(first_problem(r));
    CHECK(r.ok());
    CHECK(r.checked == std::vector<Version>{1, 2, 3, 4});
  }
  SUBCASE("a down that leaves a table") {
    auto r = verify_fixture(dialect, "leaves_table", database_url);
    CHECK_FALSE(r.ok());
    REQUIRE(has_problem(r, 2, VerifyProblemKind::kNotRestored));
    const auto& p = r.problems.front();
    CHECK(p.message.find("2_b_c.down.sql does not restore the schema") != std::string::npos);
    CHECK(p.difference.find("+table c") != std::string::npos);
    // The up run again fails on the table the down left; the next migration is still checked.
    CHECK(has_problem(r, 2, VerifyProblemKind::kReapplyFailed));
    CHECK(r.completed);
    CHECK(r.checked == std::vector<Version>{1, 2, 3});
    CHECK(r.problems.size() == 2);
  }
  SUBCASE("a down that drops the wrong trigger") {
    auto r = verify_fixture(dialect, "wrong_trigger", database_url);
    REQUIRE(has_problem(r, 3, VerifyProblemKind::kNotRestored));
    const std::string& d = r.problems.front().difference;
    CHECK(changed_line(d, '-', "trigger"));  // the one on a went
    CHECK(changed_line(d, '+', "trigger"));  // the one on b stayed
    CHECK_FALSE(has_problem(r, 2, VerifyProblemKind::kNotRestored));
  }
  SUBCASE("a down that misses an index") {
    auto r = verify_fixture(dialect, "misses_index", database_url);
    REQUIRE(has_problem(r, 2, VerifyProblemKind::kNotRestored));
    CHECK(r.problems.front().difference.find("t_a") != std::string::npos);
    CHECK_FALSE(has_problem(r, 1, VerifyProblemKind::kNotRestored));
  }
  SUBCASE("a down that fails") {
    auto r = verify_fixture(dialect, "down_fails", database_url);
    REQUIRE(has_problem(r, 2, VerifyProblemKind::kDownFailed));
    const auto& p = r.problems.front();
    REQUIRE(p.error.has_value());
    CHECK(p.error->file == "2_u.down.sql");
    CHECK(p.message.find("uu") != std::string::npos);
    CHECK(r.completed);
    CHECK(r.checked == std::vector<Version>{1, 2, 3});
    CHECK(r.problems.size() == 1);
  }
  SUBCASE("--from starts at a version") {
    VerifyOptions o;
    o.from = 3;
    auto r = verify(builtin(), database_url, kData + "/verify/" + dialect + "/leaves_table", o);
    CHECK(r.ok());
    CHECK(r.checked == std::vector<Version>{3});
  }
}

// The schema built by `statements` in order, and by the same statements in another order.
inline void check_order_independent(Db& a, Db& b, const std::vector<std::string>& statements,
                             const std::vector<std::size_t>& other_order) {
  for (const auto& s : statements) a.exec(s);
  for (auto i : other_order) b.exec(statements[i]);
  const std::string first = snapshot(a);
  CHECK(first == snapshot(a));  // the same schema dumped twice
  CHECK(first == snapshot(b));
  CHECK(diff_snapshots(first, snapshot(b), "a", "b").empty());
}

}  // namespace dbstep::testing::schema
