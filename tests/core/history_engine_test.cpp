// The engine's history (issue 10) against the fake driver: rows for every step, status and
// validate, migrate refusing edited files, rollback with the stored down SQL after the down file
// is gone, out-of-order migrations, baseline, repair and force. The drivers' conformance suite
// checks the same rows on real databases.

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/checksum.hpp"
#include "core/migrator.hpp"
#include "tests/core/fakes.hpp"

namespace {

using namespace dbstep;
using testing::FakeDriver;
using testing::FakeSource;

struct Notices final : Observer {
  std::vector<std::string> seen;
  void on_notice(const std::string& message) override { seen.push_back(message); }
  bool any(std::string_view fragment) const {
    for (const auto& s : seen) {
      if (s.find(fragment) != std::string::npos) return true;
    }
    return false;
  }
};

// A database (the fake driver's state) that outlives the Migrators opened on it, so a test can
// change the migration files between runs as a branch switch would.
struct Database {
  DbState current;
  bool history_table = false;
  std::vector<HistoryRow> rows;
  std::vector<std::string> executed;
};

struct Run {
  Database& db;
  FakeDriver* driver;
  Notices notices;
  std::unique_ptr<Migrator> m;
  Run(Database& database, std::map<std::string, std::string> files, MigratorOptions options = {})
      : db(database) {
    auto d = std::make_unique<FakeDriver>();
    d->current = db.current;
    d->history_table = db.history_table;
    d->history_rows = db.rows;
    driver = d.get();
    options.observer = &notices;
    m = std::make_unique<Migrator>(std::make_unique<FakeSource>(std::move(files)), std::move(d),
                                   options);
  }
  ~Run() {
    db.current = driver->current;
    db.history_table = driver->history_table;
    db.rows = driver->history_rows;
    db.executed.insert(db.executed.end(), driver->executed.begin(), driver->executed.end());
  }
};

std::map<std::string, std::string> three() {
  return {{"1_a.up.sql", "CREATE 1"}, {"1_a.down.sql", "DROP 1"}, {"2_b.up.sql", "CREATE 2"},
          {"2_b.down.sql", "DROP 2"}, {"3_c.up.sql", "CREATE 3"}, {"3_c.down.sql", "DROP 3"}};
}

const VersionStatus& find(const StatusReport& r, Version v) {
  for (const auto& s : r.versions) {
    if (s.version == v) return s;
  }
  FAIL("version " << v << " not in the report");
  return r.versions.front();
}

}  // namespace

TEST_CASE("history: every step appends a row with the file's checksum and the down SQL") {
  Database db;
  {
    Run run(db, three());
    REQUIRE(run.m->up().ok());
    REQUIRE(run.m->steps(-1).ok());
  }
  REQUIRE(db.rows.size() == 4);
  CHECK(db.rows[0].version == 1);
  CHECK(db.rows[0].direction == Direction::kUp);
  CHECK(db.rows[0].kind == HistoryKind::kApplied);
  CHECK(db.rows[0].checksum == migration_checksum("CREATE 1"));
  CHECK(db.rows[0].down_sql == std::optional<std::string>("DROP 1"));
  CHECK(db.rows[0].applied_by.find('@') != std::string::npos);
  CHECK(db.rows[0].dbstep_version == dbstep_release());
  CHECK(db.rows[0].applied_at.size() == 24);
  CHECK(db.rows[3].version == 3);
  CHECK(db.rows[3].direction == Direction::kDown);
  CHECK(db.rows[3].checksum == migration_checksum("DROP 3"));
  CHECK_FALSE(db.rows[3].down_sql.has_value());

  // Turned off, only the version table is written.
  Database plain;
  MigratorOptions off;
  off.record_history = false;
  {
    Run run(plain, three(), off);
    REQUIRE(run.m->up().ok());
  }
  CHECK(plain.rows.empty());
  CHECK_FALSE(plain.history_table);
}

TEST_CASE("history: a failing migration leaves no row, one left dirty leaves a failed row") {
  Database db;
  {
    Run run(db, three());
    run.driver->fail_body = "CREATE 2";
    auto r = run.m->up();
    CHECK_FALSE(r.ok());
  }
  CHECK(db.rows.size() == 1);
  {
    Run run(db, three());
    run.driver->fail_body = "CREATE 2";
    run.driver->failure_leaves_dirty = true;
    CHECK_FALSE(run.m->up().ok());
  }
  REQUIRE(db.rows.size() == 2);
  CHECK(db.rows[1].version == 2);
  CHECK(db.rows[1].kind == HistoryKind::kFailed);
  {
    Run run(db, three());
    auto report = run.m->status();
    CHECK(find(report, 2).state == MigrationState::kDirty);
    CHECK(report.summary.dirty == 1);
    // repair --force 2 after the schema was mended: 2 reads as applied (a forced row vouches
    // for it), not as pending below the current version, so --out-of-order will not run it.
    auto repaired = run.m->repair(OptVersion{2});
    CHECK(repaired.cleared_dirty);
    report = run.m->status();
    CHECK(find(report, 2).state == MigrationState::kApplied);
    CHECK_FALSE(find(report, 2).before_history);
    CHECK(report.summary.out_of_order == 0);
  }
  CHECK(db.rows.back().kind == HistoryKind::kForced);
}

TEST_CASE("history: migrate refuses to run when an applied file was edited, naming it") {
  Database db;
  {
    Run run(db, three());
    REQUIRE(run.m->steps(2).ok());
  }
  auto edited = three();
  edited["2_b.up.sql"] = "CREATE 2 -- edited";
  edited["2_b.down.sql"] = "DROP 2 -- edited too";
  {
    Run run(db, edited);
    auto r = run.m->up();
    REQUIRE_FALSE(r.ok());
    CHECK(r.error->code() == ErrorCode::kValidation);
    CHECK(std::string(r.error->what()).find("2_b.up.sql") != std::string::npos);
    CHECK(r.steps.empty());
    CHECK(run.driver->current == DbState{2, false});
    // validate says the same, with what to do.
    auto problems = run.m->validate();
    REQUIRE(problems.size() == 1);
    CHECK(problems[0].file == "2_b.up.sql");
    CHECK(problems[0].message.find("dbstep repair") != std::string::npos);
  }
  {
    MigratorOptions ignore;
    ignore.ignore_checksums = true;
    Run run(db, edited, ignore);
    CHECK(run.m->steps(1).ok());  // 3 applied despite the edit
    CHECK(run.m->steps(-1).ok());
  }
  // CRLF line endings are not an edit.
  auto crlf = three();
  crlf["1_a.up.sql"] = "CREATE 1\r\n";
  {
    Run run(db, three());
    auto report = run.m->status();
    CHECK(find(report, 2).edited == false);
  }
  // repair accepts the edit; the row stores the new down SQL.
  {
    Run run(db, edited);
    auto repaired = run.m->repair();
    CHECK(repaired.accepted == std::vector<Version>{2});
    CHECK(run.m->validate().empty());
    CHECK(run.m->up().ok());
  }
  CHECK(db.rows.back().kind == HistoryKind::kApplied);
  bool has_repaired = false;
  for (const auto& r : db.rows) {
    if (r.kind == HistoryKind::kRepaired) {
      has_repaired = true;
      CHECK(r.version == 2);
      CHECK(r.checksum == migration_checksum("CREATE 2 -- edited"));
      CHECK(r.down_sql == std::optional<std::string>("DROP 2 -- edited too"));
    }
  }
  CHECK(has_repaired);
}

TEST_CASE("history: rollback uses the stored down SQL when the down file is gone") {
  Database db;
  {
    Run run(db, three());
    REQUIRE(run.m->up().ok());
  }
  // A branch switch: migration 3's files are gone; 2's down file is gone.
  std::map<std::string, std::string> other = {{"1_a.up.sql", "CREATE 1"},
                                              {"1_a.down.sql", "DROP 1 -- fixed"},
                                              {"2_b.up.sql", "CREATE 2"}};
  {
    Run run(db, other);
    auto report = run.m->status();
    CHECK(find(report, 3).file_missing);
    CHECK(find(report, 3).down_stored);
    auto problems = run.m->validate();
    REQUIRE(problems.size() == 1);
    CHECK(problems[0].message.find("can still be rolled back") != std::string::npos);
    // golang-migrate would fail here ("no migration found for version 3"): the history holds
    // 3's down SQL, so the rollback is planned across it and runs it.
    auto r = run.m->steps(-1);
    REQUIRE(r.ok());
    CHECK(run.notices.any("down SQL stored"));
    CHECK(run.driver->current == DbState{2, false});
    // Moving up never crosses a version known only from the history.
    CHECK(run.m->up().steps.empty());
    CHECK(run.driver->current == DbState{2, false});
  }
  CHECK(db.executed.back() == "DROP 3");
  // Back on the first branch, 3 applied again; then only 3's down file is gone, and 1's down
  // file was fixed since 1 ran.
  {
    Run run(db, three());
    REQUIRE(run.m->up().ok());
  }
  auto no_down = three();
  no_down.erase("3_c.down.sql");
  no_down["1_a.down.sql"] = "DROP 1 -- fixed";
  {
    Run run(db, no_down);
    auto r = run.m->down();
    REQUIRE(r.ok());
    CHECK(run.notices.any("down SQL stored"));
    CHECK(run.notices.any("1_a.down.sql differs"));
  }
  const std::vector<std::string> tail(db.executed.end() - 3, db.executed.end());
  CHECK(tail == std::vector<std::string>{"DROP 3", "DROP 2", "DROP 1 -- fixed"});
}

TEST_CASE("history: a rollback of 600 migrations reads the stored down SQL a window at a time") {
  std::map<std::string, std::string> with_downs, ups_only;
  for (int v = 1; v <= 600; ++v) {
    with_downs[fmt::format("{}_m.up.sql", v)] = fmt::format("CREATE {}", v);
    with_downs[fmt::format("{}_m.down.sql", v)] = fmt::format("DROP {}", v);
    ups_only[fmt::format("{}_m.up.sql", v)] = fmt::format("CREATE {}", v);
  }
  ups_only["7_m.down.sql"] = "DROP 7 -- fixed";  // a file, where there is one, wins
  Database db;
  {
    Run run(db, with_downs);
    REQUIRE(run.m->up().ok());
  }
  Run run(db, ups_only);
  const auto r = run.m->down();
  REQUIRE(r.ok());
  CHECK(r.steps.size() == 600);
  CHECK(run.driver->current == DbState{std::nullopt, false});
  CHECK(run.driver->stored_downs_calls == 3);  // steps 1-256, 257-512, 513-600
  std::vector<std::string> expected;
  for (int v = 600; v >= 1; --v) expected.push_back(v == 7 ? "DROP 7 -- fixed" : fmt::format("DROP {}", v));
  const auto& executed = run.driver->executed;
  CHECK(std::vector<std::string>(executed.end() - 600, executed.end()) == expected);
}

TEST_CASE("history: migrations pending below the current version are reported, and applied with out_of_order") {
  Database db;
  std::map<std::string, std::string> main_branch = {{"1_a.up.sql", "CREATE 1"},
                                                    {"3_c.up.sql", "CREATE 3"}};
  {
    Run run(db, main_branch);
    REQUIRE(run.m->up().ok());
  }
  auto merged = main_branch;
  merged["2_b.up.sql"] = "CREATE 2";
  {
    Run run(db, merged);
    auto r = run.m->up();
    CHECK(r.ok());
    CHECK(r.steps.empty());
    CHECK(run.notices.any("2_b.up.sql"));
    CHECK(find(run.m->status(), 2).state == MigrationState::kOutOfOrder);
    CHECK(run.m->validate().size() == 1);
  }
  {
    MigratorOptions ooo;
    ooo.out_of_order = true;
    Run run(db, merged, ooo);
    auto r = run.m->up();
    REQUIRE(r.ok());
    REQUIRE(r.steps.size() == 1);
    CHECK(r.steps[0].version == 2);
    CHECK(run.driver->current == DbState{3, false});
    CHECK(find(run.m->status(), 2).state == MigrationState::kApplied);
  }
  CHECK(db.executed.back() == "CREATE 2");
}

TEST_CASE("history: a golang-migrate database gains history, then baseline and force") {
  Database db;
  db.current = DbState{2, false};  // golang-migrate left it at 2: no history table
  {
    Run run(db, three());
    auto report = run.m->status();
    CHECK_FALSE(report.history_table);
    CHECK(find(report, 1).before_history);
    CHECK(find(report, 2).before_history);
    CHECK(run.m->validate().empty());
    REQUIRE(run.m->up().ok());
    report = run.m->status();
    CHECK(report.history_table);
    CHECK(find(report, 2).before_history);
    CHECK_FALSE(find(report, 3).before_history);
  }

  Database fresh;
  {
    Run run(fresh, three());
    run.m->baseline(2);
    CHECK(run.driver->current == DbState{2, false});
    CHECK(run.driver->executed.empty());
    // A database with a version is refused unless told.
    Error e(ErrorCode::kInternal, "");
    try {
      run.m->baseline(3);
    } catch (const Error& err) {
      e = err;
    }
    CHECK(e.code() == ErrorCode::kInvalidArgument);
    CHECK(std::string(e.what()).find("already at version 2") != std::string::npos);
    CHECK_THROWS_AS(run.m->baseline(7, true), Error);  // not a version of the source
  }
  REQUIRE(fresh.rows.size() == 2);
  CHECK(fresh.rows[0].kind == HistoryKind::kBaseline);
  CHECK(fresh.rows[1].down_sql == std::optional<std::string>("DROP 2"));
  {
    Run run(fresh, three());
    CHECK(run.m->validate().empty());
    run.m->force(1);
  }
  CHECK(fresh.rows.back().kind == HistoryKind::kForced);
  CHECK(fresh.rows.back().version == 1);
  CHECK(fresh.current == DbState{1, false});
}
