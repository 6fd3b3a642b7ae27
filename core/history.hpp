#pragma once
// The history table: one row per step dbstep took on a database, appended in the same
// transaction as the step, next to golang-migrate's version table (which stays exactly as
// golang-migrate keeps it). It records what ran (checksum of the file), what can undo it (the down
// file's bytes when the up ran), when, for how long and by whom. status and validate read it;
// rollback uses its down SQL when the down file is gone.
//
// Rows are never updated or deleted by dbstep. A database without the table (golang-migrate's, or
// an older dbstep's) works as before and gains history from its next step.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/migration.hpp"
#include "core/version.hpp"

namespace dbstep {

enum class HistoryKind {
  kApplied,   // the step ran and committed
  kFailed,    // a step outside a transaction failed part way (the database is dirty)
  kBaseline,  // `baseline`: marked as applied, no SQL run
  kForced,    // `force`: the version was set by hand, no SQL run
  kRepaired,  // `repair`: an edited file's new checksum was accepted
};
const char* to_string(HistoryKind kind);
std::optional<HistoryKind> parse_history_kind(std::string_view text);

struct HistoryRow {
  std::int64_t id = 0;  // the order rows were written in; assigned by the database
  Version version = 0;  // whose file ran (going down: the version left)
  std::string identifier;
  Direction direction = Direction::kUp;
  HistoryKind kind = HistoryKind::kApplied;
  std::optional<std::string> checksum;  // migration_checksum() of the file that ran; none: no file
  // An up step's down file as it was then (none: there was no down file). Filled when the
  // Migrator hands the row to the driver; Driver::history() leaves it empty and says only
  // whether one is stored (Driver::stored_downs() reads it), to keep reading the history cheap.
  std::optional<std::string> down_sql;
  bool down_stored = false;
  std::string applied_at;  // when the step started, UTC: "2026-12-01T10:20:00.123Z"
  double duration_ms = 0;  // from the start to the history write, inside the transaction
  std::string applied_by;  // OS user@host
  std::string dbstep_version;
};

// What a history row says of its version's state, without the row's text: all a run needs to
// find migrations pending below the current version (Driver::history_marks()).
struct HistoryMark {
  std::int64_t id = 0;
  Version version = 0;
  Direction direction = Direction::kUp;
  HistoryKind kind = HistoryKind::kApplied;
};

// The history table's default name for a version table: "<table>_history".
std::string default_history_table(std::string_view version_table);

// What goes into applied_by: the OS user (login name, else $USER, else the uid) @ the host name.
std::string current_user_at_host();
// applied_at's format: UTC, milliseconds, "2026-12-01T10:20:00.123Z".
std::string format_utc(std::chrono::system_clock::time_point t);
// dbstep's own release ("0.1.0"): history rows' dbstep_version, and `dbstep --version`.
const char* dbstep_release();

}  // namespace dbstep
