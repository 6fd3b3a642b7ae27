// The engine against the fake driver: golang-migrate's TestMigrate, TestSteps, TestUpAndDown and
// dirty cases (migrate_test.go), then what dbstep adds: failures reported in the Result with what
// was applied, graceful stop, lock errors, and another process moving the database mid-run.

#include <doctest/doctest.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/migrator.hpp"
#include "core/registry.hpp"
#include "tests/core/fakes.hpp"

namespace {

using namespace dbstep;
using testing::FakeDriver;
using testing::FakeSource;

struct Engine {
  FakeSource* source;
  FakeDriver* driver;
  std::unique_ptr<Migrator> m;

  explicit Engine(std::map<std::string, std::string> files = testing::gm_fixture(),
                  MigratorOptions options = {}) {
    auto s = std::make_unique<FakeSource>(std::move(files));
    auto d = std::make_unique<FakeDriver>();
    source = s.get();
    driver = d.get();
    m = std::make_unique<Migrator>(std::move(s), std::move(d), options);
  }
  std::vector<std::string>& seq() { return driver->executed; }
  OptVersion version() { return driver->current.version; }
};

OptVersion none() { return std::nullopt; }
using Seq = std::vector<std::string>;

bool missing_version(const Result& r) {
  return r.error && r.error->code() == ErrorCode::kMissingVersion;
}

}  // namespace

TEST_CASE("engine: golang-migrate's TestMigrate") {
  Engine e;
  struct Row {
    Version to;
    bool missing;
    OptVersion version;
    Seq seq;
  };
  const std::vector<Row> rows = {
      {0, true, none(), {}},
      {1, false, 1, {"CREATE 1"}},
      {2, true, 1, {"CREATE 1"}},
      {3, false, 3, {"CREATE 1", "CREATE 3"}},
      {4, false, 4, {"CREATE 1", "CREATE 3", "CREATE 4"}},
      {5, false, 5, {"CREATE 1", "CREATE 3", "CREATE 4"}},  // no up file: no SQL
      {6, true, 5, {"CREATE 1", "CREATE 3", "CREATE 4"}},
      {7, false, 7, {"CREATE 1", "CREATE 3", "CREATE 4", "CREATE 7"}},
      {8, true, 7, {"CREATE 1", "CREATE 3", "CREATE 4", "CREATE 7"}},
      {6, true, 7, {"CREATE 1", "CREATE 3", "CREATE 4", "CREATE 7"}},
      {5, false, 5, {"CREATE 1", "CREATE 3", "CREATE 4", "CREATE 7", "DROP 7"}},
      {4, false, 4, {"CREATE 1", "CREATE 3", "CREATE 4", "CREATE 7", "DROP 7", "DROP 5"}},
      {3, false, 3, {"CREATE 1", "CREATE 3", "CREATE 4", "CREATE 7", "DROP 7", "DROP 5", "DROP 4"}},
      {2, true, 3, {"CREATE 1", "CREATE 3", "CREATE 4", "CREATE 7", "DROP 7", "DROP 5", "DROP 4"}},
      {1, false, 1, {"CREATE 1", "CREATE 3", "CREATE 4", "CREATE 7", "DROP 7", "DROP 5", "DROP 4"}},
      {0, true, 1, {"CREATE 1", "CREATE 3", "CREATE 4", "CREATE 7", "DROP 7", "DROP 5", "DROP 4"}},
  };
  for (const auto& row : rows) {
    CAPTURE(row.to);
    Result r = e.m->migrate_to(row.to);
    CHECK(missing_version(r) == row.missing);
    if (!row.missing) CHECK(r.ok());
    CHECK(e.version() == row.version);
    CHECK(e.seq() == row.seq);
  }
  Seq expected = e.seq();
  Result r = e.m->migrate_to(7);
  CHECK(r.ok());
  for (auto s : {"CREATE 3", "CREATE 4", "CREATE 7"}) expected.push_back(s);
  CHECK(e.seq() == expected);
  r = e.m->migrate_to(1);
  for (auto s : {"DROP 7", "DROP 5", "DROP 4"}) expected.push_back(s);
  CHECK(e.seq() == expected);
  CHECK(e.version() == OptVersion{1});
  r = e.m->migrate_to(1);  // no change: success with nothing applied
  CHECK(r.ok());
  CHECK(r.steps.empty());
  CHECK(e.seq() == expected);
}

TEST_CASE("engine: golang-migrate's TestSteps") {
  Engine e;
  Result r = e.m->steps(0);
  CHECK(r.ok());
  CHECK(r.steps.empty());
  CHECK(e.driver->lock_count == 0);  // Steps(0) takes no lock

  r = e.m->steps(-1);  // at none: nothing to roll back, one short
  CHECK(r.ok());
  CHECK(r.short_by == 1);
  CHECK(e.seq().empty());

  const std::vector<OptVersion> ups = {1, 3, 4, 5, 7};
  for (auto want : ups) {
    r = e.m->steps(1);
    CHECK(r.ok());
    CHECK(e.version() == want);
  }
  CHECK(e.seq() == Seq{"CREATE 1", "CREATE 3", "CREATE 4", "CREATE 7"});
  r = e.m->steps(1);  // at the last version
  CHECK(r.short_by == 1);
  CHECK(r.steps.empty());

  const std::vector<std::pair<OptVersion, Seq>> downs = {
      {5, {"DROP 7"}}, {4, {"DROP 5"}}, {3, {"DROP 4"}}, {1, {}}, {none(), {"DROP 1"}}};
  for (const auto& [want, added] : downs) {
    Seq before = e.seq();
    r = e.m->steps(-1);
    CHECK(r.ok());
    CHECK(e.version() == want);
    before.insert(before.end(), added.begin(), added.end());
    CHECK(e.seq() == before);
  }

  e.seq().clear();
  r = e.m->steps(4);
  CHECK(e.version() == OptVersion{5});
  CHECK(e.seq() == Seq{"CREATE 1", "CREATE 3", "CREATE 4"});
  r = e.m->steps(2);  // applies 7, then one short
  CHECK(e.version() == OptVersion{7});
  CHECK(r.short_by == 1);
  CHECK(r.steps.size() == 1);
  CHECK(r.ok());
  r = e.m->steps(-4);
  CHECK(e.version() == OptVersion{1});
  CHECK(e.seq() == Seq{"CREATE 1", "CREATE 3", "CREATE 4", "CREATE 7", "DROP 7", "DROP 5", "DROP 4"});
  r = e.m->steps(-2);  // applies DROP 1, then one short
  CHECK(e.version() == none());
  CHECK(r.short_by == 1);
  CHECK(e.seq().back() == "DROP 1");
}

TEST_CASE("engine: golang-migrate's TestUpAndDown") {
  Engine e;
  CHECK(e.m->up().ok());
  CHECK(e.seq() == Seq{"CREATE 1", "CREATE 3", "CREATE 4", "CREATE 7"});
  CHECK(e.m->down().ok());
  CHECK(e.seq() == Seq{"CREATE 1", "CREATE 3", "CREATE 4", "CREATE 7", "DROP 7", "DROP 5",
                       "DROP 4", "DROP 1"});
  e.seq().clear();
  CHECK(e.m->steps(1).ok());
  CHECK(e.seq() == Seq{"CREATE 1"});
  CHECK(e.m->up().ok());
  CHECK(e.seq() == Seq{"CREATE 1", "CREATE 3", "CREATE 4", "CREATE 7"});
  CHECK(e.m->steps(-1).ok());
  CHECK(e.m->down().ok());
  CHECK(e.seq() == Seq{"CREATE 1", "CREATE 3", "CREATE 4", "CREATE 7", "DROP 7", "DROP 5",
                       "DROP 4", "DROP 1"});
  CHECK(e.version() == none());
  Result again = e.m->down();
  CHECK(again.ok());
  CHECK(again.steps.empty());
  CHECK(e.m->up().ok());
  Result current = e.m->up();
  CHECK(current.ok());
  CHECK(current.steps.empty());
}

TEST_CASE("engine: a dirty database is refused until forced") {
  Engine e;
  e.driver->set_state({0, true});
  for (auto run : std::vector<std::function<Result()>>{
           [&] { return e.m->migrate_to(1); }, [&] { return e.m->steps(1); },
           [&] { return e.m->up(); }, [&] { return e.m->down(); }}) {
    Result r = run();
    REQUIRE(r.error);
    CHECK(r.error->code() == ErrorCode::kDirty);
    CHECK(std::string(r.error->what()).find("force") != std::string::npos);
    CHECK(e.seq().empty());
    CHECK_FALSE(e.driver->locked);  // released on the error path
  }
  e.m->force(1);
  CHECK(e.driver->current == DbState{1, false});
  e.m->force(7);
  CHECK(e.driver->current == DbState{7, false});
  e.m->force(std::nullopt);
  CHECK(e.driver->current == DbState{});
  // (none, dirty): what a failed first down leaves; Up() then reports dirty with version none.
  e.driver->set_state({std::nullopt, true});
  Result r = e.m->up();
  REQUIRE(r.error);
  CHECK(r.error->code() == ErrorCode::kDirty);
  CHECK_FALSE(e.m->state().version.has_value());
}

TEST_CASE("engine: a failing migration is reported with what was applied before it") {
  Engine e;
  e.driver->fail_body = "CREATE 4";
  Result r = e.m->up();
  REQUIRE(r.error);
  CHECK(r.error->code() == ErrorCode::kMigrationFailed);
  CHECK(r.error->file == "4_foobar.up.sql");
  CHECK(std::string(r.error->what()).find("the database is still at version 3") != std::string::npos);
  REQUIRE(r.steps.size() == 2);
  CHECK(r.steps[0].version == 1);
  CHECK(r.steps[1].version == 3);
  CHECK(r.from == none());
  CHECK(r.to == OptVersion{3});
  CHECK(e.version() == OptVersion{3});
  CHECK_FALSE(e.driver->locked);

  // A migration that ran outside a transaction leaves the database dirty, and says so.
  Engine dirty;
  dirty.driver->fail_body = "CREATE 3";
  dirty.driver->failure_leaves_dirty = true;
  r = dirty.m->up();
  REQUIRE(r.error);
  CHECK(std::string(r.error->what()).find("dirty at version 3") != std::string::npos);
  CHECK(r.to == OptVersion{3});
  CHECK(dirty.driver->current == DbState{3, true});
}

TEST_CASE("engine: a stop request lets the running migration finish and starts no other") {
  std::atomic<bool> stop{false};
  struct StopAfterFirst final : Observer {
    std::atomic<bool>* stop;
    void on_step_finished(const AppliedStep&) override { stop->store(true); }
  } observer;
  observer.stop = &stop;
  MigratorOptions options;
  options.stop = &stop;
  options.observer = &observer;
  Engine e(testing::gm_fixture(), options);
  Result r = e.m->up();
  CHECK(r.ok());
  CHECK(r.stopped);
  CHECK(r.steps.size() == 1);
  CHECK(e.version() == OptVersion{1});
  CHECK_FALSE(e.driver->locked);
}

TEST_CASE("engine: lock errors") {
  Engine e;
  e.driver->held_elsewhere = true;
  Result r = e.m->up();
  REQUIRE(r.error);
  CHECK(r.error->code() == ErrorCode::kLockTimeout);
  CHECK(e.seq().empty());
  e.driver->held_elsewhere = false;
  e.driver->locked = true;  // the lock is already held in this process
  r = e.m->up();
  REQUIRE(r.error);
  CHECK(r.error->code() == ErrorCode::kLocked);
}

TEST_CASE("engine: another process moving the database mid-run is followed, not repeated") {
  // Before migration 3 runs here, "another process" applies 3 and 4.
  auto d = std::make_unique<FakeDriver>();
  FakeDriver* driver = d.get();
  bool moved = false;
  driver->before_apply = [&](FakeDriver& fd, const Step& step) {
    if (!moved && step.version == 3) {
      moved = true;
      fd.executed.push_back("CREATE 3 (other)");
      fd.executed.push_back("CREATE 4 (other)");
      fd.current = DbState{4, false};
    }
  };
  std::vector<Plan> plans;
  struct Recorder final : Observer {
    std::vector<Plan>* plans;
    void on_plan(const Plan& p) override { plans->push_back(p); }
  } rec;
  rec.plans = &plans;
  MigratorOptions options;
  options.observer = &rec;
  Migrator m(std::make_unique<FakeSource>(testing::gm_fixture()), std::move(d), options);
  Result r = m.up();
  CHECK(r.ok());
  CHECK(r.concurrent);
  CHECK(driver->executed == Seq{"CREATE 1", "CREATE 3 (other)", "CREATE 4 (other)", "CREATE 7"});
  CHECK(driver->current == DbState{7, false});
  REQUIRE(plans.size() == 2);
  CHECK(plans[1].replanned);
  CHECK(plans[1].from == OptVersion{4});
  REQUIRE(r.steps.size() == 3);  // 1, then 5 (no file) and 7 after re-planning
  CHECK(r.steps[1].version == 5);
  CHECK(r.steps[2].version == 7);

  // When the other process already went past the goal, the run ends without doing anything.
  auto d2 = std::make_unique<FakeDriver>();
  d2->before_apply = [](FakeDriver& fd, const Step&) {
    if (fd.current.version == OptVersion{1}) fd.current = DbState{7, false};
  };
  FakeDriver* driver2 = d2.get();
  driver2->current = DbState{1, false};
  Migrator m2(std::make_unique<FakeSource>(testing::gm_fixture()), std::move(d2));
  r = m2.steps(1);
  CHECK(r.ok());
  CHECK(r.concurrent);
  CHECK(r.steps.empty());
  CHECK(driver2->executed.empty());
}

TEST_CASE("engine: events arrive in order and pending/needs_migration agree with the plan") {
  struct Log final : Observer {
    std::vector<std::string> events;
    void on_locked(std::chrono::nanoseconds) override { events.push_back("locked"); }
    void on_plan(const Plan& p) override { events.push_back(fmt::format("plan {}", p.steps.size())); }
    void on_step_started(const PlannedStep& s) override { events.push_back(fmt::format("start {}", s.version)); }
    void on_step_finished(const AppliedStep& s) override { events.push_back(fmt::format("done {}", s.version)); }
  } log;
  MigratorOptions options;
  options.observer = &log;
  Engine e(testing::gm_fixture(), options);
  CHECK(e.m->needs_migration());
  CHECK(e.m->pending().size() == 5);
  e.m->steps(2);
  CHECK(log.events == std::vector<std::string>{"locked", "plan 2", "start 1", "done 1", "start 3", "done 3"});
  CHECK(e.m->pending().size() == 3);
  e.m->up();
  CHECK_FALSE(e.m->needs_migration());
  CHECK(e.m->pending().empty());
  // Files are read only for what runs and what the history keeps: the 4 up bodies that ran, the
  // down files of the versions that went up (1, 4, 5, 7: stored in the history for a later
  // rollback), and, before the second run went up, the applied up files 1 and 3 (checked for
  // edits).
  CHECK(e.source->reads == 10);
}

TEST_CASE("engine: a version the source does not know is named") {
  Engine e;
  e.driver->set_state({2, false});
  Result r = e.m->up();
  REQUIRE(r.error);
  CHECK(r.error->code() == ErrorCode::kMissingVersion);
  CHECK(std::string(r.error->what()).find("no migration found for version 2") != std::string::npos);
}

TEST_CASE("engine: duplicate files fail when the Migrator is made, naming both") {
  auto files = testing::gm_fixture();
  files["1_other.up.sql"] = "CREATE 1 again";
  try {
    Migrator m(std::make_unique<FakeSource>(files), std::make_unique<FakeDriver>());
    FAIL("expected an error");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::kDuplicateMigration);
    CHECK(std::string(e.what()).find("1_foobar.up.sql") != std::string::npos);
    CHECK(std::string(e.what()).find("1_other.up.sql") != std::string::npos);
  }
}

TEST_CASE("engine: --single-transaction applies the whole plan at once, or nothing") {
  MigratorOptions options;
  options.single_transaction = true;
  Engine e(testing::gm_fixture(), options);
  Result r = e.m->up();
  CHECK(r.ok());
  CHECK(e.driver->batches == 1);
  CHECK(r.steps.size() == 5);
  CHECK(e.seq() == Seq{"CREATE 1", "CREATE 3", "CREATE 4", "CREATE 7"});
  CHECK(e.version() == OptVersion{7});

  Engine failing(testing::gm_fixture(), options);
  failing.driver->fail_body = "CREATE 4";
  r = failing.m->up();
  REQUIRE(r.error);
  CHECK(r.steps.empty());
  CHECK(r.to == none());
  CHECK(failing.seq().empty());
  CHECK(std::string(r.error->what()).find("rolled back all 5 migration(s)") != std::string::npos);

  // Down and goto go through the same path.
  CHECK(e.m->migrate_to(3).ok());
  CHECK(e.version() == OptVersion{3});
  CHECK(e.driver->batches == 2);
  CHECK(e.m->down().ok());
  CHECK(e.version() == none());
}

TEST_CASE("engine: --single-transaction reports its steps once committed, and a stop ends the batch") {
  struct Log final : Observer {
    std::vector<std::string> events;
    std::atomic<bool>* stop = nullptr;
    void on_plan(const Plan& p) override { events.push_back(fmt::format("plan {}", p.steps.size())); }
    void on_step_started(const PlannedStep& s) override {
      events.push_back(fmt::format("start {}", s.version));
      if (stop && s.version == 3) stop->store(true);
    }
    void on_step_finished(const AppliedStep& s) override { events.push_back(fmt::format("done {}", s.version)); }
  } log;
  MigratorOptions options;
  options.single_transaction = true;
  options.observer = &log;
  Engine e(testing::gm_fixture(), options);
  Result r = e.m->steps(2);
  CHECK(r.ok());
  CHECK(log.events == std::vector<std::string>{"plan 2", "start 1", "start 3", "done 1", "done 3"});
  REQUIRE(r.steps.size() == 2);
  CHECK(r.steps[1].version == 3);
  CHECK(r.steps[1].file == "3_foobar.up.sql");

  // A stop requested while 3 runs: 3 commits with the batch, 4 never starts.
  std::atomic<bool> stop{false};
  log.stop = &stop;
  log.events.clear();
  options.stop = &stop;
  Engine stopping(testing::gm_fixture(), options);
  stopping.driver->current = DbState{1, false};
  r = stopping.m->up();
  CHECK(r.ok());
  CHECK(r.stopped);
  CHECK(log.events == std::vector<std::string>{"plan 4", "start 3", "done 3"});
  REQUIRE(r.steps.size() == 1);
  CHECK(stopping.version() == OptVersion{3});
}

TEST_CASE("engine: Result contents on success, partial failure and nothing to do") {
  Engine e;
  Result ok = e.m->steps(3);
  REQUIRE(ok.ok());
  CHECK(ok.from == none());
  CHECK(ok.to == OptVersion{4});
  REQUIRE(ok.steps.size() == 3);
  CHECK(ok.steps[0].version == 1);
  CHECK(ok.steps[0].identifier == "foobar");
  CHECK(ok.steps[0].direction == Direction::kUp);
  CHECK(ok.steps[0].file == "1_foobar.up.sql");
  CHECK(ok.steps[0].target == OptVersion{1});
  CHECK(ok.steps[2].version == 4);
  std::chrono::nanoseconds sum{0};
  for (const auto& s : ok.steps) sum += s.duration;
  CHECK(ok.duration >= sum);
  CHECK(ok.short_by == 0);
  CHECK_FALSE(ok.stopped);
  CHECK_FALSE(ok.concurrent);

  Result nothing = e.m->migrate_to(4);
  CHECK(nothing.ok());
  CHECK(nothing.steps.empty());
  CHECK(nothing.from == OptVersion{4});
  CHECK(nothing.to == OptVersion{4});

  e.driver->fail_body = "DROP 4";
  Result down_fail = e.m->steps(-1);
  REQUIRE_FALSE(down_fail.ok());
  CHECK(down_fail.steps.empty());
  CHECK(down_fail.from == OptVersion{4});
  CHECK(down_fail.to == OptVersion{4});
  CHECK(down_fail.error->file == "4_foobar.down.sql");
  CHECK(down_fail.error->version == OptVersion{4});
  CHECK(down_fail.error->line == 1);

  e.driver->fail_body.clear();
  Result down = e.m->steps(-2);  // 4 -> 3 (DROP 4), 3 -> 1 (no down file)
  REQUIRE(down.ok());
  REQUIRE(down.steps.size() == 2);
  CHECK(down.steps[0].direction == Direction::kDown);
  CHECK(down.steps[0].file == "4_foobar.down.sql");
  CHECK(down.steps[0].target == OptVersion{3});
  CHECK(down.steps[1].file.empty());
  CHECK(down.steps[1].target == OptVersion{1});
}

TEST_CASE("engine: a migration that loses the connection keeps its own error") {
  Engine e;
  e.driver->fail_body = "CREATE 3";
  e.driver->failure_loses_connection = true;
  Result r = e.m->up();
  REQUIRE(r.error);
  CHECK(r.error->code() == ErrorCode::kMigrationFailed);
  CHECK(r.error->file == "3_foobar.up.sql");
  std::string m = r.error->what();
  CHECK(m.find("failed at line 1") != std::string::npos);
  CHECK(m.find("no connection to the server") != std::string::npos);
  CHECK(m.find("unknown") != std::string::npos);
  REQUIRE(r.steps.size() == 1);
}

TEST_CASE("engine: an observer's on_plan can cancel the run before anything is applied") {
  struct Veto final : Observer {
    void on_plan(const Plan& p) override {
      if (!p.steps.empty()) throw Error(ErrorCode::kDatabase, "backup failed");
    }
  } veto;
  MigratorOptions options;
  options.observer = &veto;
  Engine e(testing::gm_fixture(), options);
  Result r = e.m->up();
  REQUIRE(r.error);
  CHECK(std::string(r.error->what()) == "backup failed");
  CHECK(e.seq().empty());
  CHECK_FALSE(e.driver->locked);
}

TEST_CASE("engine: an up-to-date database is settled by one unlocked read") {
  Engine e;
  REQUIRE(e.m->up().ok());
  const int locks = e.driver->lock_count;
  Result r = e.m->up();
  CHECK(r.ok());
  CHECK(r.steps.empty());
  CHECK(r.to == OptVersion{7});
  CHECK(e.driver->lock_count == locks);  // no lock taken
  // A dirty database still goes through the lock and is refused there.
  e.driver->set_state({7, true});
  r = e.m->up();
  REQUIRE(r.error);
  CHECK(r.error->code() == ErrorCode::kDirty);
  CHECK(e.driver->lock_count == locks + 1);
}

TEST_CASE("engine: an up-to-date run reads the history's marks with the state only when told") {
  struct Quiet final : Observer {};
  Quiet quiet;
  for (const bool observed : {false, true}) {
    CAPTURE(observed);
    MigratorOptions options;
    if (observed) options.observer = &quiet;
    Engine e(testing::gm_fixture(), options);
    REQUIRE(e.m->up().ok());
    e.driver->state_and_marks_calls = 0;
    REQUIRE(e.m->up().ok());
    // With someone to tell of migrations pending below the current version, one read of both.
    CHECK(e.driver->state_and_marks_calls == (observed ? 1 : 0));
    // Going down never wants them.
    REQUIRE(e.m->steps(-1).ok());
    CHECK(e.driver->state_and_marks_calls == (observed ? 1 : 0));
  }
  // An unreadable history fails the run that needs it, and only that one: a dirty database is
  // still reported as dirty.
  MigratorOptions options;
  options.observer = &quiet;
  Engine e(testing::gm_fixture(), options);
  REQUIRE(e.m->up().ok());
  e.driver->history_fails = true;
  Result r = e.m->up();
  REQUIRE(r.error);
  CHECK(r.error->code() == ErrorCode::kDatabase);
  CHECK(std::string(r.error->what()).find("unreadable") != std::string::npos);
  e.driver->set_state({7, true});
  r = e.m->up();
  REQUIRE(r.error);
  CHECK(r.error->code() == ErrorCode::kDirty);
}

TEST_CASE("engine: Migrator::open lists the source while the driver is being opened") {
  std::vector<std::string> events;
  Registry registry;
  registry.add_source("fake", [&](const Url&) {
    auto s = std::make_unique<FakeSource>(testing::gm_fixture());
    s->on_list = [&] { events.push_back("list"); };
    return s;
  });
  // A driver that can start opening: started first, finished after the listing.
  registry.add_driver(
      "started",
      [&](const Url&) -> std::unique_ptr<Driver> {
        events.push_back("open");
        return std::make_unique<FakeDriver>();
      },
      [&](const Url&) -> PendingDriver {
        events.push_back("start");
        return [&]() -> std::unique_ptr<Driver> {
          events.push_back("finish");
          return std::make_unique<FakeDriver>();
        };
      });
  // One that cannot: opened at once, before the listing.
  registry.add_driver("plain", [&](const Url&) -> std::unique_ptr<Driver> {
    events.push_back("open");
    return std::make_unique<FakeDriver>();
  });

  Migrator m = Migrator::open(registry, "started://db", "fake://files");
  CHECK(events == std::vector<std::string>{"start", "list", "finish"});
  CHECK(m.up().ok());
  CHECK(m.state().version == OptVersion{7});

  events.clear();
  Migrator plain = Migrator::open(registry, "plain://db", "fake://files");
  CHECK(events == std::vector<std::string>{"open", "list"});

  // open_driver() opens at once either way; an unknown scheme is refused by both.
  events.clear();
  CHECK(registry.open_driver("started://db") != nullptr);
  CHECK(events == std::vector<std::string>{"open"});
  CHECK_THROWS_AS(registry.start_driver("nope://db"), Error);

  // A failure to finish opening comes out of Migrator::open, after the listing.
  events.clear();
  registry.add_driver(
      "failing", [](const Url&) -> std::unique_ptr<Driver> { return nullptr; },
      [&](const Url&) -> PendingDriver {
        events.push_back("start");
        return []() -> std::unique_ptr<Driver> {
          throw Error(ErrorCode::kDatabase, "cannot connect");
        };
      });
  try {
    Migrator::open(registry, "failing://db", "fake://files");
    FAIL("expected an error");
  } catch (const Error& err) {
    CHECK(err.code() == ErrorCode::kDatabase);
  }
  CHECK(events == std::vector<std::string>{"start", "list"});
}
