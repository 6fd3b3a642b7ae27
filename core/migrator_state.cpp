// The Migrator's commands about where migrations stand rather than moving the database: status,
// validate, baseline, repair and force, and the checks a run going up makes before it starts
// (edited files, migrations pending below the current version). They read the history
// (core/history.hpp) through the driver and compute states with core/status.hpp.

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/checksum.hpp"
#include "core/migrator.hpp"
#include "core/run_lock.hpp"

namespace dbstep {

using detail::LockGuard;

std::string Migrator::up_checksum(Version v) {
  const auto* entry = index_.find(v);
  return migration_checksum(source_->read(entry->up->name));
}

StatusReport Migrator::status_of(const DbState& state, bool checksums) {
  std::optional<std::vector<HistoryRow>> rows = driver_->history();
  const std::vector<HistoryRow> none;
  return compute_status(index_, state, rows ? *rows : none, rows.has_value(), [&](Version v) {
    return checksums ? up_checksum(v) : std::string();
  });
}

StatusReport Migrator::status() { return status_of(driver_->state(), true); }

std::vector<Version> Migrator::out_of_order(const DbState& state,
                                            std::optional<std::vector<HistoryMark>> marks) {
  if (!state.version) return {};
  if (!marks) return {};  // no history table: golang-migrate's reading, all below are applied
  return out_of_order_versions(index_, state, std::move(*marks));
}

void Migrator::report_out_of_order(const std::vector<Version>& versions) {
  if (versions.empty() || !options_.observer) return;
  std::vector<std::string> names;
  for (Version v : versions) {
    const auto* e = index_.find(v);
    names.push_back(e && e->up ? e->up->name : std::to_string(v));
  }
  options_.observer->on_notice(fmt::format(
      "{} migration(s) below the current version have never been applied (merged from another "
      "branch?): {}. golang-migrate would skip them for ever; apply them with --out-of-order, or "
      "give them versions above the current one",
      versions.size(), fmt::join(names, ", ")));
}

std::vector<PlannedStep> Migrator::check_before_up(const DbState& current) {
  if (!current.version) return {};  // nothing applied: nothing edited, nothing below
  const StatusReport report = status_of(current, !options_.ignore_checksums);
  std::vector<std::string> edited;
  std::vector<Version> below;
  for (const auto& s : report.versions) {
    if (s.edited) edited.push_back(s.up_file.empty() ? std::to_string(s.version) : s.up_file);
    if (s.state == MigrationState::kOutOfOrder) below.push_back(s.version);
  }
  if (!edited.empty() && !options_.ignore_checksums) {
    throw Error(ErrorCode::kValidation,
                fmt::format("{} applied migration file(s) in {} were edited since they ran: {}. "
                            "Nothing was applied. Restore the files, or, after reviewing the "
                            "edit, accept it with `dbstep repair` (or run with "
                            "--ignore-checksums)",
                            edited.size(), source_name_, fmt::join(edited, ", ")));
  }
  if (!options_.out_of_order) {
    report_out_of_order(below);
    return {};
  }
  std::vector<PlannedStep> steps;
  for (Version v : below) {
    // Runs its up file and leaves the recorded version where it is.
    steps.push_back(PlannedStep{v, current.version, Direction::kUp, index_.find(v)->identifier()});
  }
  return steps;
}

std::vector<ValidationProblem> Migrator::validate() {
  const StatusReport report = status();
  std::vector<ValidationProblem> problems;
  for (const auto& s : report.versions) {
    const std::string file = !s.up_file.empty() ? s.up_file
                             : !s.down_file.empty() ? s.down_file
                                                    : fmt::format("{}_{}", s.version, s.identifier);
    auto add = [&](std::string message) {
      problems.push_back(ValidationProblem{s.version, file, std::move(message)});
    };
    if (s.state == MigrationState::kDirty) {
      add(fmt::format("migration {} is dirty: it failed part way outside a transaction. Repair "
                      "the schema, then `dbstep force VERSION` (or `dbstep repair --force "
                      "VERSION`)",
                      s.version));
    }
    if (s.edited) {
      add(fmt::format("{} was edited since it was applied (checksum {} recorded, {} now): restore "
                      "it, or accept the edit with `dbstep repair`",
                      file, s.recorded_checksum.value_or("none").substr(0, 12),
                      s.file_checksum.value_or("none").substr(0, 12)));
    }
    if (s.file_missing) {
      add(s.down_stored
              ? fmt::format("migration {} ({}) is applied but its files are gone from the "
                            "source; it can still be rolled back with its stored down SQL",
                            s.version, s.identifier)
              : fmt::format("migration {} ({}) is applied but its files are gone from the "
                            "source and no down SQL is stored: it cannot be rolled back. Restore "
                            "its files",
                            s.version, s.identifier));
    }
    if (s.state == MigrationState::kOutOfOrder) {
      add(fmt::format("{} is pending below the current version {} (merged from another branch?): "
                      "apply it with `dbstep migrate --out-of-order`, or give it a version above "
                      "the current one",
                      file, to_string(report.state.version)));
    }
  }
  return problems;
}

HistoryRow Migrator::row_for_files(Version v, HistoryKind kind) {
  if (applied_by_.empty()) applied_by_ = current_user_at_host();
  const auto* entry = index_.find(v);
  HistoryRow row;
  row.version = v;
  row.direction = Direction::kUp;
  row.kind = kind;
  if (entry) {
    row.identifier = entry->identifier();
    if (entry->up) row.checksum = migration_checksum(source_->read(entry->up->name));
    if (entry->down) row.down_sql = source_->read(entry->down->name);
  }
  row.applied_at = format_utc(std::chrono::system_clock::now());
  row.applied_by = applied_by_;
  row.dbstep_version = dbstep_release();
  return row;
}

void Migrator::force(OptVersion v) {
  LockGuard lock(*driver_, options_.lock_timeout, options_.stop);
  std::vector<HistoryRow> rows;
  if (options_.record_history && v) {
    HistoryRow row = row_for_files(*v, HistoryKind::kForced);
    row.checksum.reset();  // nothing ran: no file to vouch for
    row.down_sql.reset();
    rows.push_back(std::move(row));
  }
  driver_->record_state(DbState{v, false}, rows);
  lock.release();
}

void Migrator::baseline(Version v, bool over_existing) {
  if (!index_.contains(v)) {
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("baseline {}: no migration with that version in {}", v, source_name_));
  }
  LockGuard lock(*driver_, options_.lock_timeout, options_.stop);
  const DbState current = driver_->state();
  if ((current.version || current.dirty) && !over_existing) {
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("baseline {}: {} is already at version {}{}; baseline is for a "
                            "database made without dbstep. Use --force to baseline anyway",
                            v, driver_->describe(), to_string(current.version),
                            current.dirty ? " (dirty)" : ""));
  }
  std::vector<HistoryRow> rows;
  for (const auto& e : index_.entries()) {
    if (e.version > v) break;
    rows.push_back(row_for_files(e.version, HistoryKind::kBaseline));
  }
  driver_->record_state(DbState{v, false}, rows);
  lock.release();
}

RepairResult Migrator::repair(std::optional<OptVersion> dirty_version) {
  LockGuard lock(*driver_, options_.lock_timeout, options_.stop);
  const DbState current = driver_->state();
  RepairResult result;
  std::vector<HistoryRow> rows;
  for (const auto& s : status_of(current, true).versions) {
    if (!s.edited || !index_.contains(s.version)) continue;
    rows.push_back(row_for_files(s.version, HistoryKind::kRepaired));
    result.accepted.push_back(s.version);
  }
  DbState next = current;
  if (dirty_version) {
    next = DbState{*dirty_version, false};
    result.cleared_dirty = current.dirty;
    if (options_.record_history && *dirty_version) {
      // As force() does: the version is vouched for by hand (its only row may say it failed).
      HistoryRow row = row_for_files(**dirty_version, HistoryKind::kForced);
      row.checksum.reset();
      row.down_sql.reset();
      rows.push_back(std::move(row));
    }
  }
  if (!rows.empty() || next != current) driver_->record_state(next, rows);
  lock.release();
  return result;
}

}  // namespace dbstep
