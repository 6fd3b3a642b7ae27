// The Migrator's dry runs (--dry-run): the plan a run would make from the database's state, and
// each step as its driver would run it, with nothing taken, written or created. The planning is
// the runs' own (plan_*_from in migrator.cpp), so a dry run and the run after it agree.

#include <fmt/format.h>

#include "core/migrator.hpp"
#include "core/run_lock.hpp"
#include "core/stored_down_reader.hpp"

namespace dbstep {

template <typename PlanFn>
DryRun Migrator::dry_run(PlanFn&& make_plan, bool up) {
  DryRun out;
  out.state = driver_->state();
  // A real run refuses a dirty database before it plans: so does its dry run.
  if (out.state.dirty) throw detail::dirty_error(*driver_, out.state);
  out.plan = make_plan(out.state.version);
  if (out.plan.steps.empty() ? up : out.plan.steps.front().direction == Direction::kUp) {
    // Edited applied files stop a run going up; pending migrations below the current version
    // are reported, or run first with out_of_order.
    std::vector<PlannedStep> below = check_before_up(out.state);
    out.plan.steps.insert(out.plan.steps.begin(), below.begin(), below.end());
  }
  out.steps.reserve(out.plan.steps.size());
  detail::StoredDownReader downs(*driver_, out.plan);
  for (std::size_t i = 0; i < out.plan.steps.size(); ++i) {
    const PlannedStep& planned = out.plan.steps[i];
    const Step step = make_step(out.plan, i, downs);
    DryRunStep described{planned, step.file, std::nullopt};
    if (step.has_file()) {
      described.preview = driver_->preview(step);
      if (options_.single_transaction && described.preview &&
          !described.preview->in_transaction) {
        throw cannot_batch(step, described.preview->why_outside);
      }
    }
    out.steps.push_back(std::move(described));
  }
  return out;
}

DryRun Migrator::dry_run_up() {
  return dry_run([&](OptVersion from) { return plan_up_from(from, std::nullopt); }, true);
}

DryRun Migrator::dry_run_down() {
  return dry_run([&](OptVersion from) { return plan_down_from(from, std::nullopt); }, false);
}

DryRun Migrator::dry_run_steps(std::int64_t n) {
  if (n == 0) {
    DryRun out;
    out.state = driver_->state();
    out.plan.from = out.state.version;
    return out;
  }
  if (n > 0) {
    return dry_run(
        [&](OptVersion from) { return plan_up_from(from, static_cast<std::uint64_t>(n)); }, true);
  }
  const auto count = static_cast<std::uint64_t>(-(n + 1)) + 1;  // -n without overflow
  return dry_run([&](OptVersion from) { return plan_down_from(from, count); }, false);
}

DryRun Migrator::dry_run_to(Version v) {
  return dry_run([&](OptVersion from) { return plan_to_from(from, v); }, true);
}

DryRun Migrator::dry_run_redo() {
  return dry_run([&](OptVersion from) { return plan_redo_from(from); }, false);
}

}  // namespace dbstep
