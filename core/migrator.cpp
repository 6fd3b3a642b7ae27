#include "core/migrator.hpp"

#include <fmt/format.h>

namespace dbstep {

namespace {

using Clock = std::chrono::steady_clock;

// Holds the driver's lock for one run; releases it on every path. unlock() failures on the
// error path are swallowed: the original error is the one worth reporting.
class LockGuard {
 public:
  LockGuard(Driver& driver, std::chrono::milliseconds timeout, const std::atomic<bool>* stop)
      : driver_(driver) {
    driver_.lock(timeout, stop);
    held_ = true;
  }
  ~LockGuard() {
    if (held_) {
      try {
        driver_.unlock();
      } catch (...) {
      }
    }
  }
  void release() {
    held_ = false;
    driver_.unlock();
  }
  LockGuard(const LockGuard&) = delete;
  LockGuard& operator=(const LockGuard&) = delete;

 private:
  Driver& driver_;
  bool held_ = false;
};

Error dirty_error(const Driver& driver, const DbState& state) {
  Error e(ErrorCode::kDirty,
          fmt::format("{} is dirty at version {}: a migration that ran outside a transaction failed "
                      "part way, so its changes may be half applied. Repair the schema by hand, "
                      "then record the version it is really at with `dbstep force VERSION` "
                      "(golang-migrate: \"Dirty database version {}. Fix and force version.\")",
                      driver.describe(), to_string(state.version), to_string(state.version)));
  e.version = state.version;
  return e;
}

Error with_message(const Error& from, std::string message) {
  Error e(from.code(), message);
  e.file = from.file;
  e.version = from.version;
  e.line = from.line;
  e.column = from.column;
  e.sqlstate = from.sqlstate;
  e.detail = from.detail;
  e.statement = from.statement;
  return e;
}

// Runs `apply`; when it fails with a SQL error, adds where the database stands now (unchanged,
// because the transaction rolled back, or dirty) and updates `current` to match.
template <typename Apply>
bool with_state_report(Driver& driver, DbState& current, Apply&& apply,
                       std::string_view unchanged_note = "") {
  try {
    return apply();
  } catch (const Error& e) {
    if (e.code() != ErrorCode::kMigrationFailed) throw;
    DbState after;
    try {
      after = driver.state();
    } catch (const Error& state_error) {
      // The connection may be gone (the migration can end its own session): keep the
      // migration's error, and say that where the database stands is unknown.
      throw with_message(e, fmt::format("{}; afterwards the version could not be read ({}), so "
                                        "whether migration {} was applied is unknown: check "
                                        "with `dbstep version`",
                                        e.what(), state_error.what(), to_string(e.version)));
    }
    std::string where =
        after == current
            ? fmt::format("the database is still at version {}{}", to_string(current.version),
                          unchanged_note)
            : fmt::format("the database is now dirty at version {} because the migration ran "
                          "outside a transaction; repair it, then run `dbstep force VERSION`",
                          to_string(after.version));
    current = after;
    throw with_message(e, fmt::format("{}; {}", e.what(), where));
  }
}

bool apply_reporting_state(Driver& driver, const Step& step, DbState& current) {
  return with_state_report(driver, current, [&] { return driver.apply(step, current); });
}

bool before_in_direction(Direction d, const OptVersion& a, const OptVersion& b) {
  return d == Direction::kUp ? version_less(a, b) : version_less(b, a);
}

}  // namespace

Migrator::Migrator(std::unique_ptr<Source> source, std::unique_ptr<Driver> driver,
                   MigratorOptions options)
    : source_(std::move(source)), driver_(std::move(driver)), options_(options) {
  source_name_ = source_->describe();
  index_ = MigrationIndex::build(source_->list(), source_name_);
}

Migrator Migrator::open(const Registry& registry, std::string_view database_url,
                        std::string_view source_url, MigratorOptions options) {
  // The source first: a bad migrations folder is reported before any connection is made.
  auto source = registry.open_source(source_url);
  auto driver = registry.open_driver(database_url);
  return Migrator(std::move(source), std::move(driver), options);
}

Step Migrator::make_step(const PlannedStep& planned) {
  Step step;
  step.version = planned.version;
  step.target = planned.target;
  step.direction = planned.direction;
  step.identifier = planned.identifier;
  const auto* entry = index_.find(planned.version);
  const auto& file = planned.direction == Direction::kUp ? entry->up : entry->down;
  if (file) {
    step.file = file->name;
    step.sql = source_->read(file->name);
  }
  return step;
}

template <typename PlanFn>
Result Migrator::run(PlanFn&& make_plan) {
  Result result;
  const auto started = Clock::now();
  Observer* obs = options_.observer;
  DbState current;
  bool have_state = false;
  try {
    // Nothing to do is the common case (every start of an application): one unlocked read of the
    // state settles it without the lock's round trips. Anything else is decided under the lock.
    {
      DbState seen = driver_->state();
      if (!seen.dirty) {
        std::optional<Plan> quick;
        try {
          quick = make_plan(seen.version);
        } catch (const Error&) {
          // Reported under the lock, from a state read there.
        }
        if (quick && quick->steps.empty() && quick->short_by == 0) {
          result.from = result.to = seen.version;
          result.duration = Clock::now() - started;
          if (obs) obs->on_plan(*quick);
          return result;
        }
      }
    }
    const auto lock_started = Clock::now();
    LockGuard lock(*driver_, options_.lock_timeout, options_.stop);
    if (obs) obs->on_locked(Clock::now() - lock_started);

    current = driver_->state();
    have_state = true;
    result.from = current.version;
    if (current.dirty) throw dirty_error(*driver_, current);

    Plan plan = make_plan(current.version);
    result.short_by = plan.short_by;
    result.steps.reserve(plan.steps.size());
    if (obs) obs->on_plan(plan);
    const OptVersion goal = plan.to();
    const Direction way = plan.steps.empty() ? Direction::kUp : plan.steps.front().direction;

    std::size_t i = 0;
    while (i < plan.steps.size()) {
      bool moved = false;
      if (options_.single_transaction) {
        moved = !run_batch(plan, current, result);
        if (!moved) break;
      } else {
        if (options_.stop && options_.stop->load()) {
          result.stopped = true;
          break;
        }
        const PlannedStep& planned = plan.steps[i];
        Step step = make_step(planned);
        if (obs) obs->on_step_started(planned);
        const auto step_started = Clock::now();
        bool applied = apply_reporting_state(*driver_, step, current);
        if (applied) {
          AppliedStep done{step.version, step.target, step.direction, step.identifier, step.file,
                           Clock::now() - step_started};
          current = DbState{step.target, false};
          if (obs) obs->on_step_finished(done);
          result.steps.push_back(std::move(done));
          ++i;
          continue;
        }
        moved = true;
      }
      // Another process moved the database since we planned. Carry on toward the same goal from
      // where it is now, if it is still on the way.
      result.concurrent = true;
      const DbState planned_from = current;
      current = driver_->state();
      if (current == planned_from) {
        throw Error(ErrorCode::kInternal,
                    fmt::format("{} refused a migration from version {} but still reports that "
                                "version: a driver bug",
                                driver_->describe(), to_string(current.version)));
      }
      if (current.dirty) throw dirty_error(*driver_, current);
      if (!before_in_direction(way, current.version, goal)) break;
      plan = plan_to(index_, current.version, goal);
      plan.replanned = true;
      if (obs) obs->on_plan(plan);
      i = 0;
    }
    lock.release();
  } catch (const Error& e) {
    result.error = e;
  } catch (const std::exception& e) {
    result.error = Error(ErrorCode::kInternal, fmt::format("unexpected error: {}", e.what()));
  }
  // A stop that came during the last migration (or during the lock wait) left nothing planned
  // undone, yet the caller asked to stop and must learn that it was heard.
  if (options_.stop && options_.stop->load()) result.stopped = true;
  result.to = have_state ? current.version : OptVersion{};
  if (!have_state) result.from = std::nullopt;
  result.duration = Clock::now() - started;
  return result;
}

bool Migrator::run_batch(const Plan& plan, DbState& current, Result& result) {
  Observer* obs = options_.observer;
  // The batch's steps go straight into result.steps (reserved for the plan: no second vector of
  // 10,000 steps), are taken out again if the batch does not commit, and are reported once it
  // has.
  const std::size_t first = result.steps.size();
  auto take_back = [&] {
    result.steps.erase(result.steps.begin() + static_cast<std::ptrdiff_t>(first),
                       result.steps.end());
  };
  std::size_t next_index = 0;
  Step step;
  auto step_started = Clock::now();
  StepFeed feed = [&]() -> const Step* {
    if (next_index > 0) {
      result.steps.push_back(AppliedStep{step.version, step.target, step.direction,
                                         step.identifier, step.file, Clock::now() - step_started});
    }
    if (next_index == plan.steps.size()) return nullptr;
    if (options_.stop && options_.stop->load()) {
      result.stopped = true;
      return nullptr;
    }
    const PlannedStep& planned = plan.steps[next_index++];
    step = make_step(planned);
    if (obs) obs->on_step_started(planned);
    step_started = Clock::now();
    return &step;
  };
  const std::string note = fmt::format(
      ": --single-transaction rolled back all {} migration(s) of the run", plan.steps.size());
  bool applied = false;
  try {
    applied = with_state_report(
        *driver_, current, [&] { return driver_->apply_batch(current, feed); }, note);
  } catch (...) {
    take_back();
    throw;
  }
  if (!applied) {
    take_back();
    result.stopped = false;
    return false;
  }
  if (result.steps.size() > first) current = DbState{result.steps.back().target, false};
  if (obs) {
    for (std::size_t i = first; i < result.steps.size(); ++i) obs->on_step_finished(result.steps[i]);
  }
  return true;
}

Result Migrator::up() {
  return run([&](OptVersion from) { return plan_up(index_, from, std::nullopt, source_name_); });
}

Result Migrator::down() {
  return run([&](OptVersion from) { return plan_down(index_, from, std::nullopt); });
}

Result Migrator::steps(std::int64_t n) {
  if (n == 0) {
    // golang-migrate: Steps(0) is "no change" without taking the lock.
    Result r;
    r.from = r.to = state().version;
    return r;
  }
  if (n > 0) {
    return run([&](OptVersion from) {
      return plan_up(index_, from, static_cast<std::uint64_t>(n), source_name_);
    });
  }
  const auto count = static_cast<std::uint64_t>(-(n + 1)) + 1;  // -n without overflow
  return run([&](OptVersion from) { return plan_down(index_, from, count); });
}

Result Migrator::migrate_to(Version v) {
  return run([&](OptVersion from) { return plan_to(index_, from, v); });
}

void Migrator::force(OptVersion v) {
  LockGuard lock(*driver_, options_.lock_timeout, options_.stop);
  driver_->set_state(DbState{v, false});
  lock.release();
}

void Migrator::drop() {
  LockGuard lock(*driver_, options_.lock_timeout, options_.stop);
  driver_->drop();
  lock.release();
}

DbState Migrator::state() { return driver_->state(); }

std::vector<PlannedStep> Migrator::pending() {
  DbState s = driver_->state();
  if (s.dirty) throw dirty_error(*driver_, s);
  if (index_.empty() && !s.version) return {};
  return plan_up(index_, s.version, std::nullopt, source_name_).steps;
}

bool Migrator::needs_migration() {
  DbState s = driver_->state();
  return s.dirty || s.version != index_.last();
}

}  // namespace dbstep
