// The engine's stop request (MigratorOptions::stop) against the fake driver: a stop during the
// run's last migration is still reported, and a stop while waiting for the lock ends the run
// with nothing applied. (The stop between migrations is in migrator_test.cpp.)

#include <doctest/doctest.h>

#include <atomic>
#include <memory>
#include <utility>

#include "core/migrator.hpp"
#include "tests/core/fakes.hpp"

namespace {

using namespace dbstep;
using testing::FakeDriver;
using testing::FakeSource;

struct Engine {
  FakeDriver* driver;
  std::unique_ptr<Migrator> m;

  explicit Engine(MigratorOptions options) {
    auto d = std::make_unique<FakeDriver>();
    driver = d.get();
    m = std::make_unique<Migrator>(std::make_unique<FakeSource>(testing::gm_fixture()),
                                   std::move(d), options);
  }
};

}  // namespace

TEST_CASE("engine: a stop during the run's last migration keeps it and reports the stop") {
  for (bool single_transaction : {false, true}) {
    CAPTURE(single_transaction);
    std::atomic<bool> stop{false};
    MigratorOptions options;
    options.stop = &stop;
    options.single_transaction = single_transaction;
    Engine e(options);
    // The fixture's last up migration is 7: the stop arrives while it runs.
    e.driver->before_apply = [&](FakeDriver&, const Step& step) {
      if (step.version == 7) stop = true;
    };
    Result r = e.m->up();
    CHECK(r.ok());
    CHECK(r.stopped);
    CHECK(r.steps.size() == 5);  // 1, 3, 4, 5 (no file: only the version moves), 7
    CHECK(r.to == OptVersion{7});
    CHECK(e.driver->current == DbState{7, false});
    CHECK_FALSE(e.driver->locked);
  }
}

TEST_CASE("engine: a run without a stop request is not reported stopped") {
  std::atomic<bool> stop{false};
  MigratorOptions options;
  options.stop = &stop;
  Engine e(options);
  Result r = e.m->up();
  CHECK(r.ok());
  CHECK_FALSE(r.stopped);
  CHECK(r.steps.size() == 5);  // 1, 3, 4, 5 (no file: only the version moves), 7
}

TEST_CASE("engine: a stop while waiting for the lock ends the run: nothing read or applied") {
  std::atomic<bool> stop{true};
  MigratorOptions options;
  options.stop = &stop;
  Engine e(options);
  e.driver->held_elsewhere = true;
  Result r = e.m->up();
  REQUIRE(r.error);
  CHECK(r.error->code() == ErrorCode::kStopped);
  CHECK(r.stopped);
  CHECK(r.steps.empty());
  CHECK(e.driver->executed.empty());
  CHECK_FALSE(e.driver->locked);
  // force and drop take the lock the same way: the stop reaches them as an Error.
  try {
    e.m->force(OptVersion{1});
    FAIL("force should have been stopped");
  } catch (const Error& stopped) {
    CHECK(stopped.code() == ErrorCode::kStopped);
  }
  CHECK(e.driver->current == DbState{});
}
