#include "core/migrator.hpp"

#include <fmt/format.h>

#include "core/checksum.hpp"
#include "core/run_lock.hpp"
#include "core/stored_down_reader.hpp"

namespace dbstep {

namespace {

using Clock = std::chrono::steady_clock;
using detail::dirty_error;
using detail::LockGuard;
using detail::StoredDownReader;

// What to do about a migration that failed part way outside a transaction and left the database
// dirty, naming the version to force: going up, the version before the migration (once what it
// did is undone); going down, the version below it (once its rollback is finished by hand).
std::string dirty_advice(const Step& step, const DbState& before, const DbState& after) {
  if (step.direction == Direction::kUp) {
    return fmt::format("the database is now dirty at version {} because migration {} ran outside "
                       "a transaction and failed part way: undo what it did, then run `dbstep "
                       "force {}` (the version before it) and migrate again",
                       to_string(after.version), step.version, to_string(before.version));
  }
  return fmt::format("the database is now dirty at version {} because the rollback of migration "
                     "{} ran outside a transaction and failed part way: finish undoing it by "
                     "hand, then run `dbstep force {}` (the version below it)",
                     to_string(after.version), step.version, to_string(step.target));
}

// Runs `apply`; when it fails with a SQL error, adds where the database stands now (unchanged,
// because the transaction rolled back, or dirty: then what to do, when `step` says which step
// failed) and updates `current` to match.
template <typename Apply>
bool with_state_report(Driver& driver, DbState& current, Apply&& apply,
                       std::string_view unchanged_note = "", const Step* step = nullptr) {
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
      throw e.with_message(fmt::format("{}; afterwards the version could not be read ({}), so "
                                        "whether migration {} was applied is unknown: check "
                                        "with `dbstep version`",
                                        e.what(), state_error.what(), to_string(e.version)));
    }
    std::string where =
        after == current
            ? fmt::format("the database is still at version {}{}", to_string(current.version),
                          unchanged_note)
        : step && after.dirty ? dirty_advice(*step, current, after)
               : fmt::format("the database is now dirty at version {} because the migration ran "
                             "outside a transaction; repair it, then run `dbstep force VERSION`",
                             to_string(after.version));
    current = after;
    throw e.with_message(fmt::format("{}; {}", e.what(), where));
  }
}

bool apply_reporting_state(Driver& driver, const Step& step, DbState& current) {
  return with_state_report(driver, current, [&] { return driver.apply(step, current); }, "",
                           &step);
}

bool before_in_direction(Direction d, const OptVersion& a, const OptVersion& b) {
  return d == Direction::kUp ? version_less(a, b) : version_less(b, a);
}

}  // namespace

Migrator::Migrator(std::unique_ptr<Source> source, const PendingDriver& driver,
                   MigratorOptions options)
    : source_(std::move(source)), options_(options) {
  source_name_ = source_->describe();
  index_ = MigrationIndex::build(source_->list(), source_name_);
  driver_ = driver();
  if (options_.backup) driver_->check_backup();
}

Migrator::Migrator(std::unique_ptr<Source> source, std::unique_ptr<Driver> driver,
                   MigratorOptions options)
    : Migrator(std::move(source), [&driver] { return std::move(driver); }, options) {}

Migrator Migrator::open(const Registry& registry, std::string_view database_url,
                        std::string_view source_url, MigratorOptions options) {
  // The source first: a bad migrations folder is reported before any connection is made.
  auto source = registry.open_source(source_url);
  // Then the driver starts connecting, and the migrations are listed while the server starts
  // its session: a PostgreSQL up-to-date run's wall time goes down by what listing takes.
  PendingDriver pending = registry.start_driver(database_url);
  return Migrator(std::move(source), pending, options);
}

Step Migrator::make_step(const Plan& plan, std::size_t i, StoredDownReader& downs) {
  const PlannedStep& planned = plan.steps[i];
  Step step;
  step.version = planned.version;
  step.target = planned.target;
  step.direction = planned.direction;
  step.identifier = planned.identifier;
  const auto* entry = index_.find(planned.version);  // nullptr: known only from the history
  static const std::optional<MigrationFile> kNoFile;
  const auto& file = !entry ? kNoFile : planned.direction == Direction::kUp ? entry->up : entry->down;
  if (file) {
    step.file = file->name;
    step.sql = source_->read(file->name);
  }
  if (planned.direction == Direction::kDown) {
    // The down SQL stored in the history when the up ran: used when the down file is gone (a
    // branch switched, a file deleted), mentioned when the file differs from it (the file wins:
    // it may be a fix).
    std::optional<std::string> stored = downs.take(i);
    Observer* obs = options_.observer;
    if (!file && stored) {
      step.file = fmt::format("{}_{}.down.sql, as stored in the history", planned.version,
                              planned.identifier);
      step.sql = std::move(*stored);
      if (obs) {
        obs->on_notice(fmt::format("migration {} has no down file in {}: rolling it back with the "
                                   "down SQL stored when it was applied",
                                   planned.version, source_name_));
      }
    } else if (file && stored && migration_checksum(*stored) != migration_checksum(step.sql)) {
      if (obs) {
        obs->on_notice(fmt::format("{} differs from the down SQL stored when migration {} was "
                                   "applied; running the file",
                                   file->name, planned.version));
      }
    }
  }
  step.history = history_row(step);
  return step;
}

std::optional<HistoryRow> Migrator::history_row(const Step& step) {
  if (!options_.record_history) return std::nullopt;
  if (applied_by_.empty()) applied_by_ = current_user_at_host();
  HistoryRow row;
  row.version = step.version;
  row.identifier = step.identifier;
  row.direction = step.direction;
  row.kind = HistoryKind::kApplied;
  if (step.has_file()) row.checksum = migration_checksum(step.sql);
  if (step.direction == Direction::kUp) {
    const auto* entry = index_.find(step.version);
    if (entry && entry->down) row.down_sql = source_->read(entry->down->name);
  }
  row.applied_at = format_utc(std::chrono::system_clock::now());
  row.applied_by = applied_by_;
  row.dbstep_version = dbstep_release();
  return row;
}

template <typename PlanFn>
Result Migrator::run(PlanFn&& make_plan, bool up) {
  Result result;
  const auto started = Clock::now();
  Observer* obs = options_.observer;
  DbState current;
  bool have_state = false;
  try {
    // Nothing to do is the common case (every start of an application): one unlocked read of the
    // state settles it without the lock's round trips. Anything else is decided under the lock.
    {
      // Going up with someone to tell (or out_of_order), the history's marks are wanted too
      // when nothing is pending above: read with the state, in one round trip where the driver
      // can, at the cost of reading them for nothing when something is.
      const bool wants_marks = up && (obs || options_.out_of_order);
      Driver::StateAndMarks read;
      if (wants_marks) {
        read = driver_->state_and_marks();
      } else {
        read.state = driver_->state();
      }
      const DbState seen = read.state;
      if (!seen.dirty) {
        std::optional<Plan> quick;
        try {
          quick = make_plan(seen.version);
        } catch (const Error&) {
          // Reported under the lock, from a state read there.
        }
        // Nothing pending above the current version; but pending migrations below it (merged
        // from another branch) are reported to the observer, and with out_of_order they are
        // work to do. With neither, nobody would hear of them: they are not looked for.
        std::vector<Version> below;
        if (wants_marks && quick && quick->steps.empty() && seen.version) {
          if (read.marks_error) std::rethrow_exception(read.marks_error);
          below = out_of_order(seen, std::move(read.marks));
        }
        if (quick && quick->steps.empty() && quick->short_by == 0 &&
            (below.empty() || !options_.out_of_order)) {
          report_out_of_order(below);
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
    if (plan.steps.empty() ? up : plan.steps.front().direction == Direction::kUp) {
      // Before anything runs: edited files stop the run; pending migrations below the current
      // version are reported, or run first with out_of_order.
      std::vector<PlannedStep> below = check_before_up(current);
      plan.steps.insert(plan.steps.begin(), below.begin(), below.end());
    }
    result.short_by = plan.short_by;
    result.steps.reserve(plan.steps.size());
    if (obs) obs->on_plan(plan);
    if (options_.backup && !plan.steps.empty()) {
      // Under the lock, from the state just read: a process that lost the race to migrate finds
      // nothing to do and copies nothing.
      result.backup = driver_->backup(current);
      if (result.backup && obs) obs->on_backup(*result.backup);
    }
    const OptVersion goal = plan.to();
    const Direction way = plan.steps.empty() ? Direction::kUp : plan.steps.front().direction;
    std::optional<StoredDownReader> downs(std::in_place, *driver_, plan);

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
        Step step = make_step(plan, i, *downs);
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
      downs.emplace(*driver_, plan);
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
  StoredDownReader downs(*driver_, plan);
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
    const PlannedStep& planned = plan.steps[next_index];
    step = make_step(plan, next_index++, downs);
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

Plan Migrator::plan_up_from(OptVersion from, std::optional<std::uint64_t> limit) {
  return plan_up(index_, from, limit, source_name_);
}

Plan Migrator::plan_down_from(OptVersion from, std::optional<std::uint64_t> limit) {
  const auto extra = down_index(DbState{from, false});
  return plan_down(extra ? *extra : index_, from, limit);
}

Plan Migrator::plan_to_from(OptVersion from, Version v) {
  // Down across versions known only from the history; never up across them.
  const auto extra = from && v < *from ? down_index(DbState{from, false}) : std::nullopt;
  if (extra) return plan_to(*extra, from, v);
  return plan_to(index_, from, v);
}

Plan Migrator::plan_redo_from(OptVersion from) {
  if (!from) {
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("nothing to redo: no migration is applied to {} (run `dbstep migrate` "
                            "first)",
                            driver_->describe()));
  }
  Plan plan = plan_down_from(from, 1);
  if (plan.steps.empty()) return plan;
  // The version that was rolled back goes up again, back to where the database was.
  const PlannedStep down = plan.steps.front();
  plan.steps.push_back(PlannedStep{down.version, down.version, Direction::kUp, down.identifier});
  return plan;
}

Result Migrator::up() {
  return run([&](OptVersion from) { return plan_up_from(from, std::nullopt); }, true);
}

std::optional<MigrationIndex> Migrator::down_index(const DbState& state) {
  // An empty source is more likely a wrong folder than a branch without migrations: it stays an
  // error (kNoMigrations) rather than a rollback run from the history alone.
  if (!state.version || index_.empty() || index_.contains(*state.version)) return std::nullopt;
  MigrationIndex index = index_;
  // The database is at a version the source does not have (a branch switched): the versions the
  // history saw applied whose files are gone can still be rolled back, with the down SQL stored
  // when they ran (or none, when they had no down file then).
  for (const auto& s : status_of(state, false).versions) {
    if (s.file_missing && !s.before_history) index.add_from_history(s.version, s.identifier);
  }
  return index;
}

Result Migrator::down() {
  return run([&](OptVersion from) { return plan_down_from(from, std::nullopt); });
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
      return plan_up_from(from, static_cast<std::uint64_t>(n));
    }, true);
  }
  const auto count = static_cast<std::uint64_t>(-(n + 1)) + 1;  // -n without overflow
  return run([&](OptVersion from) { return plan_down_from(from, count); });
}

Result Migrator::migrate_to(Version v) {
  return run([&](OptVersion from) { return plan_to_from(from, v); }, true);
}

Result Migrator::redo() {
  return run([&](OptVersion from) { return plan_redo_from(from); });
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
