#pragma once
// In-memory Source and Driver for the engine's tests (golang-migrate's stub source and stub
// database, after leveldb's FaultInjectionTestEnv): the source returns each file's body from a
// map; the driver records every body it "runs", keeps the state in memory, honours apply()'s
// state check, and can be told to fail a body, to leave a failure dirty, to hold its lock, or to
// let "another process" move the state before a step.

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "core/driver.hpp"
#include "core/error.hpp"
#include "core/source.hpp"

namespace dbstep::testing {

class FakeSource final : public Source {
 public:
  explicit FakeSource(std::map<std::string, std::string> files) : files_(std::move(files)) {}
  std::vector<std::string> list() override {
    if (on_list) on_list();
    std::vector<std::string> names;
    for (const auto& [n, b] : files_) names.push_back(n);
    return names;
  }
  std::string read(std::string_view name) override {
    auto it = files_.find(std::string(name));
    if (it == files_.end()) throw Error(ErrorCode::kSourceUnavailable, "no such file");
    ++reads;
    return it->second;
  }
  std::string describe() const override { return "fake source"; }
  int reads = 0;
  std::function<void()> on_list;

 private:
  std::map<std::string, std::string> files_;
};

// golang-migrate's fixture (§6.1): versions {1 u+d, 3 u, 4 u+d, 5 d, 7 u+d}, bodies
// "CREATE n" / "DROP n".
inline std::map<std::string, std::string> gm_fixture() {
  return {{"1_foobar.up.sql", "CREATE 1"},   {"1_foobar.down.sql", "DROP 1"},
          {"3_foobar.up.sql", "CREATE 3"},   {"4_foobar.up.sql", "CREATE 4"},
          {"4_foobar.down.sql", "DROP 4"},   {"5_foobar.down.sql", "DROP 5"},
          {"7_foobar.up.sql", "CREATE 7"},   {"7_foobar.down.sql", "DROP 7"}};
}

class FakeDriver final : public Driver {
 public:
  using Driver::lock;
  void lock(std::chrono::milliseconds timeout, const std::atomic<bool>* stop) override {
    if (locked) throw Error(ErrorCode::kLocked, "already locked");
    if (held_elsewhere && stop && stop->load()) {
      throw Error(ErrorCode::kStopped, "stopped while waiting for the lock: nothing was applied");
    }
    if (held_elsewhere) {
      throw Error(ErrorCode::kLockTimeout,
                  fmt::format("timeout: can't acquire database lock within {} ms",
                              timeout.count()));
    }
    locked = true;
    ++lock_count;
  }
  void unlock() override {
    if (!locked) throw Error(ErrorCode::kLocked, "can't unlock, as not currently locked");
    locked = false;
  }
  DbState state() override {
    if (state_fails) throw Error(ErrorCode::kDatabase, "no connection to the server");
    return current;
  }
  bool apply(const Step& step, const DbState& expected) override {
    if (before_apply) before_apply(*this, step);
    if (current != expected) return false;
    if (step.has_file()) {
      if (step.sql == fail_body) {
        if (failure_leaves_dirty) {
          current = DbState{step.target, true};
          if (step.history) {
            HistoryRow failed = *step.history;
            failed.kind = HistoryKind::kFailed;
            append(failed);
          }
        }
        if (failure_loses_connection) state_fails = true;
        Error e(ErrorCode::kMigrationFailed,
                fmt::format("migration {} ({}) failed at line 1, column 1: boom", step.version,
                            step.file));
        e.file = step.file;
        e.version = step.version;
        e.line = 1;
        e.column = 1;
        throw e;
      }
      executed.push_back(step.sql);
    }
    current = DbState{step.target, false};
    append(step.history);
    return true;
  }
  bool apply_batch(const DbState& expected, const StepFeed& next) override {
    if (current != expected) return false;
    // All or nothing, as one transaction would be.
    const DbState saved_state = current;
    const auto saved_executed = executed;
    const auto saved_history = history_rows;
    try {
      while (const Step* step = next()) {
        if (!apply(*step, current)) throw Error(ErrorCode::kInternal, "state moved mid-batch");
      }
    } catch (...) {
      current = saved_state;
      executed = saved_executed;
      history_rows = saved_history;
      throw;
    }
    ++batches;
    return true;
  }
  void set_state(const DbState& s) override { current = s; }
  // History kept in memory, as a driver keeps it in its table (the table exists once a row was
  // written).
  std::optional<std::vector<HistoryRow>> history() override {
    if (history_fails) throw Error(ErrorCode::kDatabase, "the history table is unreadable");
    if (!history_table) return std::nullopt;
    std::vector<HistoryRow> rows = history_rows;
    for (auto& r : rows) {
      r.down_stored = r.down_sql.has_value();
      r.down_sql.reset();
    }
    return rows;
  }
  StateAndMarks state_and_marks() override {
    ++state_and_marks_calls;
    return Driver::state_and_marks();
  }
  std::map<Version, std::string> stored_downs(const std::vector<Version>& versions) override {
    ++stored_downs_calls;
    std::map<Version, std::string> found;
    for (Version v : versions) {
      for (auto it = history_rows.rbegin(); it != history_rows.rend(); ++it) {
        if (it->version == v && it->direction == Direction::kUp &&
            it->kind != HistoryKind::kFailed && it->kind != HistoryKind::kForced) {
          if (it->down_sql) found.emplace(v, *it->down_sql);
          break;
        }
      }
    }
    return found;
  }
  void record_state(const DbState& s, const std::vector<HistoryRow>& rows) override {
    current = s;
    for (const auto& r : rows) append(r);
  }
  void append(const std::optional<HistoryRow>& row) {
    if (!row) return;
    history_table = true;
    history_rows.push_back(*row);
    history_rows.back().id = static_cast<std::int64_t>(history_rows.size());
  }
  void drop() override {
    executed.push_back("DROP");
    current = DbState{};
  }
  std::string describe() const override { return "fake database"; }

  DbState current;
  bool history_table = false;
  std::vector<HistoryRow> history_rows;
  std::vector<std::string> executed;
  bool locked = false;
  bool held_elsewhere = false;
  int lock_count = 0;
  int batches = 0;
  int stored_downs_calls = 0;  // Driver::stored_downs() calls
  int state_and_marks_calls = 0;
  std::string fail_body;
  bool failure_leaves_dirty = false;
  bool failure_loses_connection = false;
  bool state_fails = false;
  bool history_fails = false;  // history() (and so history_marks()) throws
  std::function<void(FakeDriver&, const Step&)> before_apply;
};

}  // namespace dbstep::testing
