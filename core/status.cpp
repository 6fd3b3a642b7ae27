#include "core/status.hpp"

#include <algorithm>
#include <map>

namespace dbstep {

const char* to_string(MigrationState state) {
  switch (state) {
    case MigrationState::kApplied:
      return "applied";
    case MigrationState::kPending:
      return "pending";
    case MigrationState::kOutOfOrder:
      return "out_of_order";
    case MigrationState::kDirty:
      return "dirty";
  }
  return "unknown";
}

namespace {

// Whether a row means "this version's up is in the database", and "... is no longer" (a
// rollback that ran). Rows of other kinds (failed, forced) leave the version as it was.
template <typename Row>
bool marks_up(const Row& row) {
  return row.direction == Direction::kUp && row.kind != HistoryKind::kFailed &&
         row.kind != HistoryKind::kForced;
}
template <typename Row>
bool marks_down(const Row& row) {
  return row.direction == Direction::kDown && row.kind == HistoryKind::kApplied;
}

// Versions at or below this were applied before the history began (nullopt: no history, or it
// began at none). From the first row: an up of V was preceded by every version below V; a down,
// a force or a baseline of V by V itself.
struct HistoryStart {
  std::optional<Version> below;     // versions < this
  std::optional<Version> at_or_below;  // versions <= this
  bool covers(Version v) const {
    return (below && v < *below) || (at_or_below && v <= *at_or_below);
  }
};

template <typename Row>
HistoryStart history_start(const std::vector<Row>& history) {
  HistoryStart start;
  if (history.empty()) return start;
  const Row* first = &history.front();
  for (const auto& row : history) {
    if (row.id < first->id) first = &row;
  }
  if (first->direction == Direction::kUp && first->kind == HistoryKind::kApplied) {
    start.below = first->version;
  } else {
    start.at_or_below = first->version;
  }
  return start;
}

// The highest version set by hand: `force V` and `baseline V` vouch for every version up to V.
template <typename Row>
std::optional<Version> highest_vouched(const std::vector<Row>& history) {
  std::optional<Version> vouched;
  for (const auto& row : history) {
    if (row.kind == HistoryKind::kForced || row.kind == HistoryKind::kBaseline) {
      if (!vouched || row.version > *vouched) vouched = row.version;
    }
  }
  return vouched;
}

// Whether a version at or below the current one whose up the history does not show in place
// is applied all the same: there is no history at all, or it lies below where the history
// starts, or at or below a version set by hand (golang-migrate's reading: every version up to
// the current one is applied). Otherwise it is out of order.
bool applied_without_row(Version v, bool no_history, const HistoryStart& start,
                         const std::optional<Version>& vouched) {
  return no_history || start.covers(v) || (vouched && v <= *vouched);
}

}  // namespace

StatusReport compute_status(const MigrationIndex& index, const DbState& state,
                            const std::vector<HistoryRow>& history, bool history_table,
                            const std::function<std::string(Version)>& checksum_of) {
  StatusReport report;
  report.state = state;
  report.history_table = history_table;

  // Each version's rows, in the order they were written.
  std::map<Version, std::vector<const HistoryRow*>> rows;
  for (const auto& row : history) rows[row.version].push_back(&row);
  for (auto& [v, list] : rows) {
    std::sort(list.begin(), list.end(),
              [](const HistoryRow* a, const HistoryRow* b) { return a->id < b->id; });
  }
  const HistoryStart start = history_start(history);
  const std::optional<Version> vouched = highest_vouched(history);

  std::map<Version, const MigrationIndex::Entry*> entries;
  for (const auto& e : index.entries()) entries[e.version] = &e;
  std::vector<Version> versions;
  for (const auto& [v, e] : entries) versions.push_back(v);
  for (const auto& [v, list] : rows) {
    if (!entries.count(v)) versions.push_back(v);
  }
  std::sort(versions.begin(), versions.end());

  for (Version v : versions) {
    VersionStatus s;
    s.version = v;
    const auto* entry = entries.count(v) ? entries.at(v) : nullptr;
    const auto rit = rows.find(v);
    const std::vector<const HistoryRow*>* mine = rit == rows.end() ? nullptr : &rit->second;
    if (entry) {
      s.identifier = entry->identifier();
      if (entry->up) s.up_file = entry->up->name;
      if (entry->down) s.down_file = entry->down->name;
    }
    // The latest row, and the latest that put this version's up in place.
    const HistoryRow* latest_up = nullptr;
    bool rolled_back_after = false;
    if (mine) {
      s.last = *mine->back();
      if (!entry) s.identifier = mine->back()->identifier;
      for (const HistoryRow* row : *mine) {
        if (marks_up(*row)) {
          latest_up = row;
          rolled_back_after = false;
        } else if (marks_down(*row)) {
          rolled_back_after = true;
        }
      }
      s.down_stored = latest_up && (latest_up->down_sql || latest_up->down_stored);
    }
    const bool at_or_below_current = state.version && v <= *state.version;
    if (!at_or_below_current) {
      if (!entry) continue;  // rolled back and deleted since: nothing to show
      s.state = MigrationState::kPending;
    } else if (latest_up && !rolled_back_after) {
      s.state = MigrationState::kApplied;
    } else if (applied_without_row(v, history.empty(), start, vouched)) {
      s.state = MigrationState::kApplied;
      s.before_history = mine == nullptr;  // a forced or failed row is history of a kind
    } else {
      s.state = MigrationState::kOutOfOrder;
    }
    if (at_or_below_current && v == *state.version && state.dirty) s.state = MigrationState::kDirty;

    if (s.state == MigrationState::kApplied || s.state == MigrationState::kDirty) {
      s.file_missing = !entry;
      if (latest_up && !rolled_back_after) s.recorded_checksum = latest_up->checksum;
      if (entry && entry->up && s.state == MigrationState::kApplied) {
        s.file_checksum = checksum_of(v);
        if (latest_up && !rolled_back_after) s.edited = s.recorded_checksum != s.file_checksum;
      } else if (entry && !entry->up && s.recorded_checksum) {
        s.edited = true;  // an up file ran, and it is gone while the down file remains
      }
    }
    if (!entry && s.state != MigrationState::kApplied && s.state != MigrationState::kDirty) {
      continue;
    }

    auto& sum = report.summary;
    switch (s.state) {
      case MigrationState::kApplied:
        ++sum.applied;
        break;
      case MigrationState::kPending:
        ++sum.pending;
        break;
      case MigrationState::kOutOfOrder:
        ++sum.out_of_order;
        break;
      case MigrationState::kDirty:
        ++sum.dirty;
        break;
    }
    if (s.edited) ++sum.edited;
    if (s.file_missing) ++sum.file_missing;
    if (s.before_history) ++sum.before_history;
    report.versions.push_back(std::move(s));
  }
  return report;
}

std::vector<Version> out_of_order_versions(const MigrationIndex& index, const DbState& state,
                                           std::vector<HistoryMark> history) {
  std::vector<Version> out;
  if (!state.version) return out;
  const HistoryStart start = history_start(history);
  const std::optional<Version> vouched = highest_vouched(history);
  // Each version's rows in the order they were written: is its up in place at the end?
  std::sort(history.begin(), history.end(), [](const HistoryMark& a, const HistoryMark& b) {
    return a.version != b.version ? a.version < b.version : a.id < b.id;
  });
  std::vector<Version> standing;  // ascending
  for (std::size_t i = 0; i < history.size();) {
    const Version v = history[i].version;
    bool up = false;
    for (; i < history.size() && history[i].version == v; ++i) {
      if (marks_up(history[i])) up = true;
      else if (marks_down(history[i])) up = false;
    }
    if (up) standing.push_back(v);
  }
  auto next_standing = standing.begin();  // both ascending: one walk
  for (const auto& e : index.entries()) {
    if (e.version > *state.version) break;
    while (next_standing != standing.end() && *next_standing < e.version) ++next_standing;
    if (next_standing != standing.end() && *next_standing == e.version) continue;
    if (e.version == *state.version && state.dirty) continue;
    if (applied_without_row(e.version, history.empty(), start, vouched)) continue;
    out.push_back(e.version);
  }
  return out;
}

}  // namespace dbstep
