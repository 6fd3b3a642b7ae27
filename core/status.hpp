#pragma once
// Status: where every migration stands, from three things the Migrator reads: the source's index
// (and each file's checksum), the version table's state, and the history table's rows. A pure
// function, so the states are tested without a database; status, validate and migrate's checks
// all read it.
//
// The version table is the truth about what is applied (as golang-migrate reads it: every version
// up to the current one); the history refines it:
// - a version at or below the current one with an up row in the history is applied, and its
//   file's checksum is compared with the recorded one (edited since?);
// - one with no row at all is "applied before history" when it lies below where the history
//   starts (golang-migrate or an older dbstep applied it), and "out of order" (pending below the
//   current version: merged from another branch, which golang-migrate would skip forever) when
//   it lies above;
// - the current version is dirty when the version table says so;
// - a version above the current one is pending.
// Versions known only from the history are listed while applied (their file is missing);
// versions rolled back and deleted since are not listed.

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/driver.hpp"
#include "core/history.hpp"
#include "core/migration.hpp"

namespace dbstep {

enum class MigrationState {
  kApplied,
  kPending,
  kOutOfOrder,  // pending, but below the current version
  kDirty,       // the current version, marked dirty
};
const char* to_string(MigrationState state);

struct VersionStatus {
  Version version = 0;
  std::string identifier;
  MigrationState state = MigrationState::kPending;
  std::string up_file;    // empty when the source has no up file for it
  std::string down_file;  // empty when the source has no down file for it
  bool file_missing = false;    // applied, and the source has neither file any more
  bool edited = false;          // applied, and the up file's checksum differs from the recorded
  bool before_history = false;  // applied, with no history row (checksum unknown)
  bool down_stored = false;     // the history holds a down SQL for it
  std::optional<std::string> recorded_checksum;
  std::optional<std::string> file_checksum;
  std::optional<HistoryRow> last;  // its latest history row (when it ran, how long)
};

struct StatusSummary {
  std::size_t applied = 0, pending = 0, out_of_order = 0, dirty = 0;
  std::size_t edited = 0, file_missing = 0, before_history = 0;
};

struct StatusReport {
  DbState state;
  bool history_table = false;  // the history table exists
  std::vector<VersionStatus> versions;  // in version order
  StatusSummary summary;
};

// `checksum_of(version)` returns the up file's checksum (called only for applied versions whose
// up file the index has, once each).
StatusReport compute_status(const MigrationIndex& index, const DbState& state,
                            const std::vector<HistoryRow>& history, bool history_table,
                            const std::function<std::string(Version)>& checksum_of);

// The versions compute_status() would call out of order (pending below the current version),
// ascending, from the history's marks alone: what every run going up checks, without building the
// report.
std::vector<Version> out_of_order_versions(const MigrationIndex& index, const DbState& state,
                                           std::vector<HistoryMark> history);

}  // namespace dbstep
