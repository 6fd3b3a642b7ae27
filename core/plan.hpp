#pragma once
// Planning: which migrations run, in which direction, to move the database from one version to
// another. These are golang-migrate's read / readUp / readDown (migrate.go) as pure functions
// over the index, with its semantics on gaps: a version with no up file still "goes up" (the
// version is recorded, no SQL runs) and one with no down file still "goes down". Going down runs
// the down file of the version being left and records the previous version.
//
// Outcomes that golang-migrate reports as errors but are not failures come back as values:
// "no change" is an empty plan, "fewer migrations than requested" is short_by > 0.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/migration.hpp"
#include "core/version.hpp"

namespace dbstep {

struct PlannedStep {
  Version version = 0;     // whose file runs
  OptVersion target;       // the version recorded afterwards
  Direction direction = Direction::kUp;
  std::string identifier;  // for messages
  friend bool operator==(const PlannedStep&, const PlannedStep&) = default;
};

struct Plan {
  OptVersion from;
  std::vector<PlannedStep> steps;
  // A count was requested and this many of them were not available (golang-migrate's
  // ErrShortLimit, or os.ErrNotExist when none was available).
  std::uint64_t short_by = 0;
  // This plan was made again because another process moved the database mid-run.
  bool replanned = false;
  OptVersion to() const { return steps.empty() ? from : steps.back().target; }
};

// Every planner throws Error(kMissingVersion) when `from` is a version the index does not know
// ("no migration found for version N"), and plan_to also when `to` is one; when the index is
// empty, that is Error(kNoMigrations) naming the source (index.where()) instead.

// Up: all pending (limit nullopt) or at most `limit` steps. Throws Error(kNoMigrations) when the
// database is at none and the index is empty.
Plan plan_up(const MigrationIndex& index, OptVersion from, std::optional<std::uint64_t> limit,
             const std::string& source_name);
// Down: all the way to none (limit nullopt) or at most `limit` steps.
Plan plan_down(const MigrationIndex& index, OptVersion from, std::optional<std::uint64_t> limit);
// Up or down to exactly `to`.
Plan plan_to(const MigrationIndex& index, OptVersion from, OptVersion to);

}  // namespace dbstep
