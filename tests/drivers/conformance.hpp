#pragma once
// The driver conformance suite: the same cases on every driver (golang-migrate's
// database/testing.Test, plus the transaction, state-check and error-location rules that dbstep
// adds). A driver's test file defines a fixture type F and invokes the suite:
//
//   TEST_CASE_TEMPLATE_INVOKE(driver_conformance, SqliteFixture);
//
// F must provide:
//   F()                                       a fresh, empty database of its own
//   std::unique_ptr<dbstep::Driver> open(std::string_view params = "")
//                                             a new driver (connection) on that database; params
//                                             are URL query parameters ("x-migrations-table=foo")
//   std::int64_t query_int(std::string_view sql)   a scalar query through another connection
//   bool table_exists(std::string_view name)       a table or view of that name exists
//   void exec(std::string_view sql)                runs SQL through another connection
//   static constexpr const char* kName
// The SQL below is written to mean the same on SQLite and PostgreSQL.

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "core/driver.hpp"
#include "core/error.hpp"
#include "core/history.hpp"

namespace dbstep::testing {

inline Step make_step(Version version, OptVersion target, std::string file, std::string sql,
                      Direction direction = Direction::kUp) {
  Step s;
  s.version = version;
  s.target = target;
  s.direction = direction;
  s.identifier = "test";
  s.file = std::move(file);
  s.sql = std::move(sql);
  return s;
}

inline Step up_step(Version v, std::string sql) {
  return make_step(v, v, std::to_string(v) + "_test.up.sql", std::move(sql));
}

// Runs `f` and returns the dbstep::Error it throws; fails the test if it throws none.
template <typename F>
Error capture_error(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e;
  }
  FAIL("expected a dbstep::Error");
  return Error(ErrorCode::kInternal, "unreachable");
}

}  // namespace dbstep::testing

TEST_CASE_TEMPLATE_DEFINE("driver conformance", F, driver_conformance) {
  using namespace dbstep;
  using dbstep::testing::capture_error;
  using dbstep::testing::make_step;
  using dbstep::testing::up_step;
  using namespace std::chrono_literals;
  F fx;
  const DbState none{};

  SUBCASE("a fresh database has no version and reading it creates nothing") {
    auto d = fx.open();
    CHECK(d->state() == none);
    const auto read = d->state_and_marks();
    CHECK(read.state == none);
    CHECK_FALSE(read.marks.has_value());
    CHECK_FALSE(fx.table_exists("schema_migrations"));
  }

  SUBCASE("lock, a second lock fails, unlock, lock again") {
    auto d = fx.open();
    d->lock(5s);
    CHECK(capture_error([&] { d->lock(5s); }).code() == ErrorCode::kLocked);
    d->unlock();
    d->lock(5s);
    d->unlock();
    auto e = capture_error([&] { d->unlock(); });
    CHECK(e.code() == ErrorCode::kLocked);
    CHECK(std::string(e.what()).find("not currently locked") != std::string::npos);
  }

  SUBCASE("set_state round trips golang-migrate's table of versions") {
    auto d = fx.open();
    const std::vector<DbState> states = {{1, true}, {1, true}, {2, false}, {2, false},
                                         {std::nullopt, true}, {std::nullopt, false}};
    for (const auto& s : states) {
      d->set_state(s);
      CHECK(d->state() == s);
      CHECK(fx.open()->state() == s);  // and another connection sees it
    }
    CHECK(fx.query_int("SELECT COUNT(*) FROM schema_migrations") == 0);
    d->set_state({std::nullopt, true});
    CHECK(fx.query_int("SELECT COUNT(*) FROM schema_migrations") == 1);
    CHECK(fx.query_int("SELECT version FROM schema_migrations") == -1);
  }

  SUBCASE("apply runs the SQL and records the version in one step") {
    auto d = fx.open();
    CHECK(d->apply(up_step(1, "CREATE TABLE t1 (x int);\nINSERT INTO t1 VALUES (1);\n"), none));
    CHECK(d->state() == DbState{1, false});
    CHECK(fx.query_int("SELECT COUNT(*) FROM t1") == 1);
    CHECK(d->apply(up_step(2, "CREATE TABLE t2 (x int)"), DbState{1, false}));
    CHECK(fx.open()->state() == DbState{2, false});
    // Down to none empties the version table, as golang-migrate does.
    CHECK(d->apply(make_step(2, 1, "2_test.down.sql", "DROP TABLE t2;", Direction::kDown),
                   DbState{2, false}));
    CHECK(d->apply(make_step(1, std::nullopt, "1_test.down.sql", "DROP TABLE t1;",
                             Direction::kDown),
                   DbState{1, false}));
    CHECK(d->state() == none);
    CHECK_FALSE(fx.table_exists("t1"));
    CHECK(fx.query_int("SELECT COUNT(*) FROM schema_migrations") == 0);
  }

  SUBCASE("apply refuses to run when the state is not the one planned from") {
    auto d = fx.open();
    CHECK_FALSE(d->apply(up_step(2, "CREATE TABLE t2 (x int)"), DbState{1, false}));
    CHECK_FALSE(fx.table_exists("t2"));
    CHECK(d->state() == none);
    d->set_state({1, false});
    auto other = fx.open();
    CHECK(other->apply(up_step(2, "CREATE TABLE t2 (x int)"), DbState{1, false}));
    // The first connection planned from 1 too; it must not run migration 2 again.
    CHECK_FALSE(d->apply(up_step(2, "CREATE TABLE t2 (x int)"), DbState{1, false}));
    CHECK(d->state() == DbState{2, false});
  }

  SUBCASE("a failing statement leaves nothing of its migration and the version unchanged") {
    auto d = fx.open();
    CHECK(d->apply(up_step(1, "CREATE TABLE keep (x int);"), none));
    auto e = capture_error([&] {
      d->apply(up_step(2,
                       "CREATE TABLE gone1 (x int);\n"
                       "INSERT INTO gone1 VALUES (1);\n"
                       "INSERT INTO no_such_table VALUES (2);\n"),
               DbState{1, false});
    });
    CHECK(e.code() == ErrorCode::kMigrationFailed);
    CHECK(e.file == "2_test.up.sql");
    CHECK(e.version == OptVersion{2});
    CHECK(e.line == 3);
    CHECK(std::string(e.what()).find("2_test.up.sql") != std::string::npos);
    CHECK(std::string(e.what()).find("line 3") != std::string::npos);
    CHECK(std::string(e.what()).find("no_such_table") != std::string::npos);
    CHECK_FALSE(fx.table_exists("gone1"));
    CHECK(fx.table_exists("keep"));
    CHECK(d->state() == DbState{1, false});
    // The driver is still usable after the failure.
    CHECK(d->apply(up_step(2, "CREATE TABLE t2 (x int);"), DbState{1, false}));
  }

  SUBCASE("a syntax error is located at its line and column, CRLF and non-ASCII included") {
    auto d = fx.open();
    auto e = capture_error([&] {
      d->apply(up_step(1,
                       "-- caf\xC3\xA9 \xE2\x98\x95\r\n"
                       "CREATE TABLE a (x int);\r\n"
                       "\r\n"
                       "/* \xC3\xA9\xC3\xA9 */ CREATE TABLEE b (x int);\r\n"),
               none);
    });
    CHECK(e.code() == ErrorCode::kMigrationFailed);
    CHECK(e.line == 4);
    CHECK(e.column == 17);  // "TABLEE", counted in characters
    CHECK(std::string(e.what()).find("TABLEE") != std::string::npos);
    CHECK_FALSE(fx.table_exists("a"));
    CHECK(d->state() == none);
  }

  SUBCASE("a step without a file only moves the version") {
    auto d = fx.open();
    CHECK(d->apply(make_step(5, 5, "", ""), none));
    CHECK(d->state() == DbState{5, false});
  }

  SUBCASE("empty, comment-only, CRLF and byte-order-mark files run as written") {
    auto d = fx.open();
    CHECK(d->apply(up_step(1, ""), none));
    CHECK(d->apply(up_step(2, "-- nothing to do here\n/* nor here */\n"), DbState{1, false}));
    CHECK(d->apply(up_step(3, "\xEF\xBB\xBF" "CREATE TABLE bom (x int);\r\nINSERT INTO bom VALUES (7);\r\n"),
                   DbState{2, false}));
    CHECK(d->state() == DbState{3, false});
    CHECK(fx.query_int("SELECT x FROM bom") == 7);
  }

  SUBCASE("-- dbstep:no-transaction runs under the dirty protocol") {
    auto d = fx.open();
    CHECK(d->apply(up_step(1, "-- dbstep:no-transaction\nCREATE TABLE nt (x int);\n"), none));
    CHECK(d->state() == DbState{1, false});
    CHECK(fx.table_exists("nt"));
    auto e = capture_error([&] {
      d->apply(up_step(2,
                       "-- dbstep:no-transaction\n"
                       "CREATE TABLE nt2 (x int);\n"
                       "INSERT INTO missing VALUES (1);\n"),
               DbState{1, false});
    });
    CHECK(e.code() == ErrorCode::kMigrationFailed);
    CHECK(e.line == 3);
    // Outside a transaction the first statement stays and the database is dirty at the target.
    CHECK(fx.table_exists("nt2"));
    CHECK(d->state() == DbState{2, true});
  }

  SUBCASE("x-migrations-table keeps the state in another table") {
    auto d = fx.open("x-migrations-table=my_versions&x-unknown-key=ignored");
    CHECK(d->apply(up_step(1, "CREATE TABLE t1 (x int)"), none));
    CHECK(fx.table_exists("my_versions"));
    CHECK_FALSE(fx.table_exists("schema_migrations"));
    CHECK(fx.query_int("SELECT version FROM my_versions") == 1);
    CHECK(fx.open()->state() == none);
    CHECK(fx.open("x-migrations-table=my_versions")->state() == DbState{1, false});
  }

  SUBCASE("a version table golang-migrate left behind is continued") {
    fx.exec("CREATE TABLE schema_migrations (version bigint not null primary key, dirty boolean "
            "not null)");
    fx.exec("INSERT INTO schema_migrations (version, dirty) VALUES (3, false)");
    auto d = fx.open();
    CHECK(d->state() == DbState{3, false});
    // No history table: the state, and no marks (golang-migrate's reading: all below applied).
    const auto read = d->state_and_marks();
    CHECK(read.state == DbState{3, false});
    CHECK_FALSE(read.marks.has_value());
    CHECK(d->apply(up_step(4, "CREATE TABLE t4 (x int)"), DbState{3, false}));
    CHECK(fx.query_int("SELECT version FROM schema_migrations") == 4);
    CHECK(fx.query_int("SELECT COUNT(*) FROM schema_migrations") == 1);
  }

  SUBCASE("drop removes tables, views and the version table; the driver works on") {
    auto d = fx.open();
    CHECK(d->apply(up_step(1,
                           "CREATE TABLE parent (id int primary key);\n"
                           "CREATE TABLE child (pid int references parent (id));\n"
                           "CREATE VIEW kids AS SELECT pid FROM child;\n"
                           "CREATE INDEX child_pid ON child (pid);\n"
                           "INSERT INTO parent VALUES (1);\nINSERT INTO child VALUES (1);\n"),
                   none));
    d->lock(5s);
    d->drop();
    d->unlock();
    CHECK_FALSE(fx.table_exists("parent"));
    CHECK_FALSE(fx.table_exists("child"));
    CHECK_FALSE(fx.table_exists("kids"));
    CHECK_FALSE(fx.table_exists("schema_migrations"));
    CHECK(d->state() == none);
    CHECK(d->apply(up_step(1, "CREATE TABLE parent (id int primary key);"), none));
    CHECK(d->state() == DbState{1, false});
  }

  SUBCASE("apply_batch commits every step and the last version together") {
    auto d = fx.open();
    std::vector<Step> steps = {up_step(1, "CREATE TABLE b1 (x int);"), make_step(2, 2, "", ""),
                               up_step(3, "CREATE TABLE b3 (x int); INSERT INTO b3 VALUES (3);")};
    std::size_t i = 0;
    CHECK(d->apply_batch(none, [&]() -> const Step* { return i < steps.size() ? &steps[i++] : nullptr; }));
    CHECK(d->state() == DbState{3, false});
    CHECK(fx.table_exists("b1"));
    CHECK(fx.query_int("SELECT x FROM b3") == 3);
    // The state moved: nothing runs.
    i = 0;
    CHECK_FALSE(d->apply_batch(none, [&]() -> const Step* { return i < steps.size() ? &steps[i++] : nullptr; }));
    CHECK(i == 0);
  }

  SUBCASE("apply_batch rolls back every step when one fails") {
    auto d = fx.open();
    d->set_state({1, false});
    std::vector<Step> steps = {up_step(2, "CREATE TABLE b2 (x int);"),
                               up_step(3, "CREATE TABLE b3 (x int);\nINSERT INTO nope VALUES (1);"),
                               up_step(4, "CREATE TABLE b4 (x int);")};
    std::size_t i = 0;
    auto e = capture_error([&] {
      d->apply_batch(DbState{1, false},
                     [&]() -> const Step* { return i < steps.size() ? &steps[i++] : nullptr; });
    });
    CHECK(e.code() == ErrorCode::kMigrationFailed);
    CHECK(e.file == "3_test.up.sql");
    CHECK(e.line == 2);
    CHECK(i == 2);  // the step after the failure was never asked for
    CHECK_FALSE(fx.table_exists("b2"));
    CHECK_FALSE(fx.table_exists("b3"));
    CHECK(d->state() == DbState{1, false});
  }

  SUBCASE("apply_batch refuses a migration that cannot run in a transaction") {
    auto d = fx.open();
    std::vector<Step> steps = {up_step(1, "CREATE TABLE b1 (x int);"),
                               up_step(2, "-- dbstep:no-transaction\nCREATE TABLE b2 (x int);")};
    std::size_t i = 0;
    auto e = capture_error([&] {
      d->apply_batch(none, [&]() -> const Step* { return i < steps.size() ? &steps[i++] : nullptr; });
    });
    CHECK(std::string(e.what()).find("cannot run inside a transaction") != std::string::npos);
    CHECK_FALSE(fx.table_exists("b1"));
    CHECK(d->state() == none);
  }

  SUBCASE("history: rows ride in the step's transaction; reads create nothing") {
    using namespace std::string_literals;
    auto with_row = [](Step step, std::optional<std::string> down = std::nullopt) {
      HistoryRow row;
      row.version = step.version;
      row.identifier = step.identifier;
      row.direction = step.direction;
      row.checksum = "c" + std::to_string(step.version);
      row.down_sql = std::move(down);
      row.applied_at = "2026-12-01T10:20:00.123Z";
      row.applied_by = "me@host";
      row.dbstep_version = "test";
      step.history = row;
      return step;
    };
    auto d = fx.open();
    CHECK_FALSE(d->history().has_value());
    CHECK_FALSE(d->stored_down(1).has_value());
    CHECK_FALSE(d->history_marks().has_value());
    CHECK(d->stored_downs({1, 2}).empty());
    CHECK_FALSE(fx.table_exists("schema_migrations_history"));

    // A failing first migration leaves neither its row nor the table.
    auto e = capture_error([&] {
      d->apply(with_row(up_step(1, "CREATE TABLE h1 (x int);\nINSERT INTO nope VALUES (1);")), none);
    });
    CHECK(e.code() == ErrorCode::kMigrationFailed);
    CHECK_FALSE(fx.table_exists("schema_migrations_history"));
    CHECK_FALSE(d->history().has_value());

    // The down SQL's bytes come back exactly: quotes, backslashes, invalid UTF-8, CRLF.
    const std::string down = "DROP TABLE h1; -- it's \\ \xff\xfe\r\n\"q\""s;
    CHECK(d->apply(with_row(up_step(1, "CREATE TABLE h1 (x int);"), down), none));
    CHECK(d->apply(with_row(up_step(2, "CREATE TABLE h2 (x int);")), DbState{1, false}));
    auto rows = d->history();
    REQUIRE(rows.has_value());
    REQUIRE(rows->size() == 2);
    const HistoryRow& r = rows->front();
    CHECK(r.version == 1);
    CHECK(r.identifier == "test");
    CHECK(r.direction == Direction::kUp);
    CHECK(r.kind == HistoryKind::kApplied);
    CHECK(r.checksum == std::optional<std::string>("c1"));
    CHECK(r.down_stored);
    CHECK_FALSE(r.down_sql.has_value());  // history() does not carry it
    CHECK(r.applied_at.size() == 24);     // "YYYY-MM-DDTHH:MM:SS.mmmZ"
    CHECK(r.duration_ms >= 0);
    CHECK(r.applied_by == "me@host");
    CHECK(r.dbstep_version == "test");
    CHECK((*rows)[1].id > r.id);
    CHECK_FALSE((*rows)[1].down_stored);
    CHECK(d->stored_down(1) == std::optional<std::string>(down));
    CHECK_FALSE(d->stored_down(2).has_value());

    // Rolling back appends a down row; a step without a file still gets its row.
    CHECK(d->apply(with_row(make_step(2, 1, "2_test.down.sql", "DROP TABLE h2;", Direction::kDown)),
                   DbState{2, false}));
    Step gap = make_step(3, 3, "", "");
    CHECK(d->apply(with_row(gap), DbState{1, false}));
    rows = d->history();
    REQUIRE(rows->size() == 4);
    CHECK((*rows)[2].direction == Direction::kDown);
    CHECK((*rows)[3].version == 3);

    // A failing step adds no row.
    capture_error([&] { d->apply(with_row(up_step(4, "INSERT INTO nope VALUES (1);")), DbState{3, false}); });
    CHECK(d->history()->size() == 4);

    // A batch: a row per step, all or none.
    capture_error([&] {
      std::vector<Step> steps = {with_row(up_step(4, "CREATE TABLE h4 (x int);")),
                                 with_row(up_step(5, "INSERT INTO nope VALUES (1);"))};
      std::size_t i = 0;
      d->apply_batch(DbState{3, false}, [&]() -> const Step* { return i < steps.size() ? &steps[i++] : nullptr; });
    });
    CHECK(d->history()->size() == 4);
    {
      std::vector<Step> steps = {with_row(up_step(4, "CREATE TABLE h4 (x int);")),
                                 with_row(up_step(5, "CREATE TABLE h5 (x int);"))};
      std::size_t i = 0;
      CHECK(d->apply_batch(DbState{3, false}, [&]() -> const Step* { return i < steps.size() ? &steps[i++] : nullptr; }));
    }
    CHECK(d->history()->size() == 6);

    // record_state: the state and the rows together.
    HistoryRow forced;
    forced.version = 2;
    forced.identifier = "test";
    forced.kind = HistoryKind::kForced;
    forced.applied_at = "2026-12-01T10:20:00.123Z";
    forced.applied_by = "me@host";
    forced.dbstep_version = "test";
    d->record_state(DbState{2, false}, {forced});
    CHECK(d->state() == DbState{2, false});
    CHECK(d->history()->back().kind == HistoryKind::kForced);

    // Another connection reads the same rows.
    CHECK(fx.open()->history()->size() == 7);

    // history_marks(): history()'s id, version, direction and kind, row for row, in any order;
    // state_and_marks() reads the same state and marks.
    const auto all = d->history();
    const auto check_marks = [&](std::optional<std::vector<HistoryMark>> marks) {
      REQUIRE(marks.has_value());
      REQUIRE(marks->size() == all->size());
      std::sort(marks->begin(), marks->end(),
                [](const HistoryMark& a, const HistoryMark& b) { return a.id < b.id; });
      for (std::size_t i = 0; i < marks->size(); ++i) {
        CHECK((*marks)[i].id == (*all)[i].id);
        CHECK((*marks)[i].version == (*all)[i].version);
        CHECK((*marks)[i].direction == (*all)[i].direction);
        CHECK((*marks)[i].kind == (*all)[i].kind);
      }
    };
    check_marks(d->history_marks());
    auto read = d->state_and_marks();
    CHECK(read.state == d->state());
    check_marks(std::move(read.marks));

    // stored_downs(): per version, its latest up row's down SQL; versions whose latest up row
    // stored none (4, 5) or that never went up (99) are absent.
    auto downs = d->stored_downs({1, 4, 5, 99});
    CHECK(downs.size() == 1);
    CHECK(downs[1] == down);
    HistoryRow again = forced;
    again.version = 1;
    again.kind = HistoryKind::kRepaired;
    again.down_sql = "DROP TABLE h1; -- the newer one";
    d->record_state(DbState{2, false}, {again});
    downs = d->stored_downs({1, 4});
    CHECK(downs.size() == 1);
    CHECK(downs[1] == *again.down_sql);
    CHECK(d->stored_down(1) == again.down_sql);
    again.down_sql.reset();  // the latest up row stored none: the older one no longer counts
    d->record_state(DbState{2, false}, {again});
    CHECK(d->stored_downs({1}).empty());
    CHECK_FALSE(d->stored_down(1).has_value());
  }

  SUBCASE("history: a dirty failure leaves a failed row") {
    auto d = fx.open();
    Step step = up_step(1, "-- dbstep:no-transaction\nCREATE TABLE hd (x int);\nINSERT INTO nope VALUES (1);\n");
    HistoryRow row;
    row.version = 1;
    row.identifier = "test";
    row.applied_at = "2026-12-01T10:20:00.123Z";
    row.applied_by = "me@host";
    row.dbstep_version = "test";
    step.history = row;
    capture_error([&] { d->apply(step, none); });
    CHECK(d->state() == DbState{1, true});
    auto rows = d->history();
    REQUIRE(rows.has_value());
    REQUIRE(rows->size() == 1);
    CHECK(rows->front().kind == HistoryKind::kFailed);
  }

  SUBCASE("history: a table of another shape under the history's name is an error naming it") {
    fx.exec("CREATE TABLE schema_migrations_history (note text)");
    auto d = fx.open();
    auto e = capture_error([&] { d->history(); });
    CHECK(e.code() == ErrorCode::kDatabase);
    CHECK(std::string(e.what()).find("schema_migrations_history") != std::string::npos);
    // Read with the state too, once there is a version (with none, the marks are not wanted):
    // the state comes back, the marks' error is kept for whoever uses them.
    CHECK_FALSE(d->state_and_marks().marks.has_value());
    CHECK_FALSE(d->state_and_marks().marks_error);
    d->set_state(DbState{1, true});
    const auto read = d->state_and_marks();
    CHECK(read.state == DbState{1, true});
    CHECK_FALSE(read.marks.has_value());
    REQUIRE(read.marks_error);
    e = capture_error([&] { std::rethrow_exception(read.marks_error); });
    CHECK(e.code() == ErrorCode::kDatabase);
    CHECK(std::string(e.what()).find("schema_migrations_history") != std::string::npos);
    CHECK(d->state() == DbState{1, true});  // the failed read left the session usable
    d->set_state(none);
    Step step = up_step(1, "CREATE TABLE hx (x int);");
    HistoryRow row;
    row.version = 1;
    row.applied_at = "2026-12-01T10:20:00.123Z";
    step.history = row;
    capture_error([&] { d->apply(step, none); });
    CHECK_FALSE(fx.table_exists("hx"));
    CHECK(d->state() == none);
  }

  SUBCASE("no part of a file is ever skipped: bad text fails the migration, nothing remains") {
    // Issue 9, defects 1 and 2: a keyword-less statement (a typo), stray text, invalid UTF-8 and
    // a NUL byte were each dropped by one driver, and the migration recorded as applied.
    using namespace std::string_literals;
    struct Bad {
      std::string sql;
      std::uint32_t line;
    };
    const std::vector<Bad> cases = {
        {"CREATE TABLE skipped (x int);\nTRUNCAT skipped;\n", 2},
        {"CREATE TABLE skipped (x int);\nxyzzy;\n", 2},
        {"CREATE TABLE skipped (x int);\n\xff\xfe;\n", 2},
        {"CREATE TABLE skipped (x int);\n\0CREATE TABLE n2 (x int);\n"s, 2},
        {"\0CREATE TABLE n2 (x int);\n"s, 1},
        {"CREATE TABLE skipped (x int);\n-- a comment\n;; xyzzy\n", 3},
    };
    auto d = fx.open();
    for (const auto& c : cases) {
      CAPTURE(c.sql);
      auto e = capture_error([&] { d->apply(up_step(1, c.sql), none); });
      CHECK(e.code() == ErrorCode::kMigrationFailed);
      CHECK(e.file == "1_test.up.sql");
      CHECK(e.line == c.line);
      CHECK_FALSE(fx.table_exists("skipped"));
      CHECK_FALSE(fx.table_exists("n2"));
      CHECK(d->state() == none);
    }
    // A file that begins a transaction and never commits it: nothing remains, nothing is dirty.
    auto e = capture_error([&] { d->apply(up_step(1, "BEGIN;\nCREATE TABLE skipped (x int);\n"), none); });
    CHECK(e.code() == ErrorCode::kMigrationFailed);
    CHECK(e.line == 1);
    CHECK_FALSE(fx.table_exists("skipped"));
    CHECK(d->state() == none);
  }

  SUBCASE("connections racing to apply the same migration apply it exactly once") {
    constexpr std::size_t kRacers = 4;
    {
      auto setup = fx.open();
      setup->apply(up_step(1, "CREATE TABLE counter (n int);"), none);
    }
    std::vector<std::unique_ptr<Driver>> drivers;
    for (std::size_t i = 0; i < kRacers; ++i) drivers.push_back(fx.open());
    // Every driver applies `step` from `expected` at once; returns how many did.
    auto race = [&](const Step& step, const DbState& expected, bool take_lock) {
      std::atomic<int> applied{0};
      std::atomic<bool> go{false};
      std::vector<std::thread> threads;
      for (auto& d : drivers) {
        threads.emplace_back([&, driver = d.get()] {
          while (!go.load()) std::this_thread::yield();
          try {
            if (take_lock) driver->lock(20s);
            if (driver->apply(step, expected)) ++applied;
            if (take_lock) driver->unlock();
          } catch (const std::exception& e) {
            applied = -100;
            INFO(std::string(e.what()));
          }
        });
      }
      go = true;
      for (auto& t : threads) t.join();
      return applied.load();
    };
    CHECK(race(up_step(2, "INSERT INTO counter VALUES (1);"), DbState{1, false}, true) == 1);
    CHECK(fx.query_int("SELECT COUNT(*) FROM counter") == 1);
    CHECK(fx.open()->state() == DbState{2, false});

    // Again without the lock, with connections that have each written before (a driver may take
    // a shorter path once it knows the version table): the state check alone must decide.
    for (auto& d : drivers) d->set_state({2, false});
    CHECK(race(up_step(3, "CREATE TABLE once (x int);\nINSERT INTO counter VALUES (3);"),
               DbState{2, false}, false) == 1);
    CHECK(fx.query_int("SELECT COUNT(*) FROM counter WHERE n = 3") == 1);
    CHECK(fx.open()->state() == DbState{3, false});
  }

  SUBCASE("a stop request ends a wait for the lock at once, and the lock is not taken") {
    auto holder = fx.open();
    holder->lock(5s);
    auto waiter = fx.open();
    std::atomic<bool> stop{false};
    std::thread stopper([&] {
      std::this_thread::sleep_for(300ms);
      stop = true;
    });
    const auto started = std::chrono::steady_clock::now();
    auto e = capture_error([&] { waiter->lock(30s, &stop); });
    const auto waited = std::chrono::steady_clock::now() - started;
    stopper.join();
    CHECK(e.code() == ErrorCode::kStopped);
    CHECK(waited < 3s);
    CHECK(std::string(e.what()).find("waiting for the migration lock") != std::string::npos);
    CHECK(std::string(e.what()).find("nothing was applied") != std::string::npos);
    holder->unlock();
    // The stop flag matters only while waiting; the stopped wait left nothing held.
    waiter->lock(5s, &stop);
    waiter->unlock();
  }

  SUBCASE("interrupt() from another thread fails the running migration, which rolls back") {
    auto d = fx.open();
    d->apply(up_step(1, "CREATE TABLE first (x int);"), none);
    // Seconds of work in one statement, the same SQL on both databases.
    const Step slow = up_step(2,
                              "CREATE TABLE slow AS WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL "
                              "SELECT x + 1 FROM c WHERE x < 10000000) SELECT count(*) AS n FROM c;");
    std::thread interrupter([&] {
      std::this_thread::sleep_for(300ms);
      d->interrupt();
    });
    const auto started = std::chrono::steady_clock::now();
    auto e = capture_error([&] { d->apply(slow, DbState{1, false}); });
    const auto took = std::chrono::steady_clock::now() - started;
    interrupter.join();
    INFO(std::string(e.what()));
    CHECK(e.code() == ErrorCode::kMigrationFailed);
    CHECK(took < 1500ms);
    CHECK_FALSE(fx.table_exists("slow"));
    CHECK(d->state() == DbState{1, false});
    // The connection works on.
    CHECK(d->apply(up_step(2, "CREATE TABLE quick (x int);"), DbState{1, false}));
    CHECK(d->state() == DbState{2, false});
  }
}
