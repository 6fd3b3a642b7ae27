#include "core/plan.hpp"

#include <fmt/format.h>

#include "core/error.hpp"

namespace dbstep {

namespace {

Error no_migrations(std::string_view source_name, std::string_view note = "") {
  return Error(ErrorCode::kNoMigrations,
               fmt::format("no migrations found in {}: files must be named like "
                           "1_create_users.up.sql and 1_create_users.down.sql{}",
                           source_name.empty() ? "the source" : source_name, note));
}

void require_known(const MigrationIndex& index, const OptVersion& v, const char* role) {
  if (v && index.empty()) {
    // Not "no migration found for version N": with no file at all, the folder is what is wrong
    // (a wrong path, a deploy that lost the files).
    throw no_migrations(index.where(), fmt::format(" ({} is {})", role, *v));
  }
  if (v && !index.contains(*v)) {
    throw Error(ErrorCode::kMissingVersion,
                fmt::format("no migration found for version {} ({}): the source has neither an up "
                            "nor a down file for it; restore the file, or use `force` to record a "
                            "version that exists",
                            *v, role));
  }
}

PlannedStep up_step(const MigrationIndex& index, Version v) {
  return PlannedStep{v, v, Direction::kUp, index.find(v)->identifier()};
}

PlannedStep down_step(const MigrationIndex& index, Version v, OptVersion target) {
  return PlannedStep{v, target, Direction::kDown, index.find(v)->identifier()};
}

// How many of the index's versions are at or below `v` (0 for none), so that a plan reserves its
// steps once instead of growing by doubling (10,000 steps: 1 MB, half of it unused).
std::size_t versions_through(const MigrationIndex& index, const OptVersion& v) {
  if (!v) return 0;
  return static_cast<std::size_t>(index.find(*v) - index.entries().data()) + 1;
}

std::size_t at_most(std::size_t n, const std::optional<std::uint64_t>& limit) {
  return limit && *limit < n ? static_cast<std::size_t>(*limit) : n;
}

}  // namespace

Plan plan_up(const MigrationIndex& index, OptVersion from, std::optional<std::uint64_t> limit,
             const std::string& source_name) {
  require_known(index, from, "the database's current version");
  Plan plan{from, {}, 0, false};
  if (limit && *limit == 0) return plan;
  plan.steps.reserve(at_most(index.size() - versions_through(index, from), limit));
  OptVersion cur = from;
  std::uint64_t count = 0;
  while (!limit || count < *limit) {
    OptVersion next = cur ? index.next(*cur) : index.first();
    if (!next) {
      if (!cur) {
        throw no_migrations(source_name);
      }
      if (limit) plan.short_by = *limit - count;
      break;
    }
    plan.steps.push_back(up_step(index, *next));
    cur = next;
    ++count;
  }
  return plan;
}

Plan plan_down(const MigrationIndex& index, OptVersion from, std::optional<std::uint64_t> limit) {
  require_known(index, from, "the database's current version");
  Plan plan{from, {}, 0, false};
  if (limit && *limit == 0) return plan;
  if (!from) {
    if (limit) plan.short_by = *limit;
    return plan;
  }
  plan.steps.reserve(at_most(versions_through(index, from), limit));
  Version cur = *from;
  std::uint64_t count = 0;
  while (!limit || count < *limit) {
    OptVersion prev = index.prev(cur);
    plan.steps.push_back(down_step(index, cur, prev));
    ++count;
    if (!prev) {
      if (limit && count < *limit) plan.short_by = *limit - count;
      break;
    }
    cur = *prev;
  }
  return plan;
}

Plan plan_to(const MigrationIndex& index, OptVersion from, OptVersion to) {
  require_known(index, from, "the database's current version");
  require_known(index, to, "the requested version");
  Plan plan{from, {}, 0, false};
  if (from == to) return plan;
  const std::size_t a = versions_through(index, from);
  const std::size_t b = versions_through(index, to);
  plan.steps.reserve(a < b ? b - a : a - b);
  if (version_less(from, to)) {
    OptVersion cur = from;
    while (cur != to) {
      cur = cur ? index.next(*cur) : index.first();
      plan.steps.push_back(up_step(index, *cur));
    }
  } else {
    Version cur = *from;
    while (OptVersion(cur) != to) {
      OptVersion prev = index.prev(cur);
      plan.steps.push_back(down_step(index, cur, prev));
      if (!prev) break;
      cur = *prev;
    }
  }
  return plan;
}

}  // namespace dbstep
