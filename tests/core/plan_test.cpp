// golang-migrate's planner tables (migrate_test.go TestRead, TestReadUp, TestReadDown) on its
// fixture {1 u+d, 3 u, 4 u+d, 5 d, 7 u+d}. golang-migrate's ErrNoChange is an empty plan here,
// its os.ErrNotExist for a count that cannot be met is short_by, and a version the source does not
// know is Error(kMissingVersion).

#include <doctest/doctest.h>

#include <optional>
#include <vector>

#include "core/error.hpp"
#include "core/plan.hpp"
#include "tests/core/fakes.hpp"

namespace {

using namespace dbstep;

MigrationIndex fixture_index() {
  std::vector<std::string> names;
  for (const auto& [n, b] : testing::gm_fixture()) names.push_back(n);
  return MigrationIndex::build(names, "fixture");
}

OptVersion v(int x) { return x < 0 ? OptVersion{} : OptVersion{static_cast<Version>(x)}; }

// M(version, target) as golang-migrate writes it; target -1 is none.
std::vector<std::pair<Version, OptVersion>> moves(const Plan& p) {
  std::vector<std::pair<Version, OptVersion>> out;
  for (const auto& s : p.steps) out.emplace_back(s.version, s.target);
  return out;
}

std::vector<std::pair<Version, OptVersion>> M(std::initializer_list<std::pair<int, int>> ms) {
  std::vector<std::pair<Version, OptVersion>> out;
  for (auto [a, b] : ms) out.emplace_back(static_cast<Version>(a), v(b));
  return out;
}

bool missing(std::function<void()> f) {
  try {
    f();
  } catch (const Error& e) {
    return e.code() == ErrorCode::kMissingVersion;
  }
  return false;
}

}  // namespace

TEST_CASE("plan_to: golang-migrate's TestRead") {
  const auto idx = fixture_index();
  const std::vector<int> absent = {0, 2, 6, 8};
  for (int from = -1; from <= 8; ++from) {
    for (int to = -1; to <= 8; ++to) {
      CAPTURE(from);
      CAPTURE(to);
      bool from_absent = std::find(absent.begin(), absent.end(), from) != absent.end();
      bool to_absent = std::find(absent.begin(), absent.end(), to) != absent.end();
      if (from_absent || to_absent) {
        CHECK(missing([&] { plan_to(idx, v(from), v(to)); }));
      } else if (from == to) {
        CHECK(plan_to(idx, v(from), v(to)).steps.empty());
      } else {
        Plan p = plan_to(idx, v(from), v(to));
        CHECK(p.to() == v(to));
        CHECK(p.short_by == 0);
      }
    }
  }
  CHECK(moves(plan_to(idx, v(-1), v(7))) == M({{1, 1}, {3, 3}, {4, 4}, {5, 5}, {7, 7}}));
  CHECK(moves(plan_to(idx, v(1), v(5))) == M({{3, 3}, {4, 4}, {5, 5}}));
  CHECK(moves(plan_to(idx, v(7), v(-1))) == M({{7, 5}, {5, 4}, {4, 3}, {3, 1}, {1, -1}}));
  CHECK(moves(plan_to(idx, v(4), v(1))) == M({{4, 3}, {3, 1}}));
  CHECK(moves(plan_to(idx, v(3), v(-1))) == M({{3, 1}, {1, -1}}));
  auto p = plan_to(idx, v(7), v(4));
  CHECK(p.steps[0].direction == Direction::kDown);
  CHECK(p.steps[0].identifier == "foobar");
}

TEST_CASE("plan_up: golang-migrate's TestReadUp") {
  const auto idx = fixture_index();
  auto up = [&](int from, int limit) {
    return plan_up(idx, v(from),
                   limit < 0 ? std::nullopt : std::optional<std::uint64_t>(limit), "fixture");
  };
  for (int from : {0, 2, 6, 8}) {
    for (int limit : {-1, 0, 1, 2}) CHECK(missing([&] { up(from, limit); }));
  }
  for (int from : {-1, 1, 3, 4, 5, 7}) CHECK(up(from, 0).steps.empty());
  CHECK(moves(up(-1, -1)) == M({{1, 1}, {3, 3}, {4, 4}, {5, 5}, {7, 7}}));
  CHECK(moves(up(-1, 1)) == M({{1, 1}}));
  CHECK(moves(up(-1, 2)) == M({{1, 1}, {3, 3}}));
  CHECK(moves(up(1, -1)) == M({{3, 3}, {4, 4}, {5, 5}, {7, 7}}));
  CHECK(moves(up(4, 2)) == M({{5, 5}, {7, 7}}));
  CHECK(moves(up(5, 1)) == M({{7, 7}}));
  auto short1 = up(5, 2);
  CHECK(moves(short1) == M({{7, 7}}));
  CHECK(short1.short_by == 1);
  CHECK(up(7, -1).steps.empty());
  CHECK(up(7, -1).short_by == 0);
  CHECK(up(7, 1).short_by == 1);
  CHECK(up(7, 2).short_by == 2);
}

TEST_CASE("plan_down: golang-migrate's TestReadDown") {
  const auto idx = fixture_index();
  auto down = [&](int from, int limit) {
    return plan_down(idx, v(from), limit < 0 ? std::nullopt : std::optional<std::uint64_t>(limit));
  };
  for (int from : {0, 2, 6, 8}) {
    for (int limit : {-1, 0, 1, 2}) CHECK(missing([&] { down(from, limit); }));
  }
  CHECK(down(-1, -1).steps.empty());
  CHECK(down(-1, -1).short_by == 0);
  CHECK(down(-1, 0).steps.empty());
  CHECK(down(-1, 1).short_by == 1);
  CHECK(down(-1, 2).short_by == 2);
  for (int from : {1, 3, 4, 5, 7}) CHECK(down(from, 0).steps.empty());
  CHECK(moves(down(1, -1)) == M({{1, -1}}));
  CHECK(moves(down(1, 1)) == M({{1, -1}}));
  auto short1 = down(1, 2);
  CHECK(moves(short1) == M({{1, -1}}));
  CHECK(short1.short_by == 1);
  CHECK(moves(down(3, 1)) == M({{3, 1}}));
  CHECK(moves(down(3, 2)) == M({{3, 1}, {1, -1}}));
  CHECK(moves(down(5, -1)) == M({{5, 4}, {4, 3}, {3, 1}, {1, -1}}));
  CHECK(moves(down(7, 1)) == M({{7, 5}}));
  CHECK(moves(down(7, 2)) == M({{7, 5}, {5, 4}}));
}

TEST_CASE("plan_up on an empty source names the source") {
  MigrationIndex empty;
  try {
    plan_up(empty, std::nullopt, std::nullopt, "folder ./nowhere");
    FAIL("expected an error");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::kNoMigrations);
    CHECK(std::string(e.what()).find("folder ./nowhere") != std::string::npos);
  }
  CHECK(plan_down(empty, std::nullopt, std::nullopt).steps.empty());
}

TEST_CASE("planning on an empty source from a recorded version names the source, not the version") {
  // A database at version 2 and a folder with no migration in it: the folder is what is wrong.
  MigrationIndex empty = MigrationIndex::build({"README.md"}, "folder ./migrations");
  auto check = [](auto&& plan) {
    try {
      plan();
      FAIL("expected an error");
    } catch (const Error& e) {
      const std::string what = e.what();
      CAPTURE(what);
      CHECK(e.code() == ErrorCode::kNoMigrations);
      CHECK(what.find("no migrations found in folder ./migrations") != std::string::npos);
      CHECK(what.find("1_create_users.up.sql") != std::string::npos);
      CHECK(what.find("no migration found for version") == std::string::npos);
    }
  };
  check([&] { plan_up(empty, v(2), std::nullopt, "folder ./migrations"); });
  check([&] { plan_down(empty, v(2), 1); });
  check([&] { plan_to(empty, v(2), v(1)); });
  check([&] { plan_to(empty, std::nullopt, v(1)); });
}
