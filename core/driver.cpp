#include "core/driver.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <thread>

#include "core/error.hpp"

namespace dbstep {

Error cannot_batch(const Step& step, std::string_view why) {
  Error e(ErrorCode::kMigrationFailed,
          fmt::format("migration {} ({}) cannot run inside a transaction ({}), so it cannot be "
                      "part of --single-transaction; nothing was applied. Run without "
                      "--single-transaction",
                      step.version, step.file, why));
  e.file = step.file;
  e.version = step.version;
  return e;
}

bool Driver::apply_batch(const DbState& /*expected*/, const StepFeed& /*next*/) {
  throw Error(ErrorCode::kInvalidArgument,
              fmt::format("{} cannot run several migrations in one transaction; run without "
                          "--single-transaction",
                          describe()));
}

std::optional<std::vector<HistoryMark>> Driver::history_marks() {
  auto rows = history();
  if (!rows) return std::nullopt;
  std::vector<HistoryMark> marks;
  marks.reserve(rows->size());
  for (const auto& r : *rows) marks.push_back(HistoryMark{r.id, r.version, r.direction, r.kind});
  return marks;
}

Driver::StateAndMarks Driver::state_and_marks() {
  StateAndMarks out{state(), std::nullopt, nullptr};
  if (!out.state.version) return out;
  try {
    out.marks = history_marks();
  } catch (...) {
    out.marks_error = std::current_exception();
  }
  return out;
}

std::optional<std::string> Driver::stored_down(Version version) {
  auto found = stored_downs({version});
  if (found.empty()) return std::nullopt;
  return std::move(found.begin()->second);
}

std::string Driver::schema_snapshot() {
  throw Error(ErrorCode::kInvalidArgument,
              fmt::format("{}: this driver cannot take a schema snapshot", describe()));
}

std::string Driver::create_scratch_database(const std::string& /*name*/) {
  throw Error(ErrorCode::kInvalidArgument,
              fmt::format("{}: this driver cannot create a scratch database; pass one with "
                          "--scratch URL",
                          describe()));
}

void Driver::drop_scratch_database(const std::string& /*name*/) {
  throw Error(ErrorCode::kInvalidArgument,
              fmt::format("{}: this driver cannot drop a scratch database", describe()));
}

void Driver::check_backup() const {
  throw Error(ErrorCode::kInvalidArgument,
              fmt::format("--backup is not available for {}: dbstep copies SQLite files only. "
                          "Back a database server up with its own tools before migrating (for "
                          "PostgreSQL: pg_dump, or a snapshot of its volume or of the managed "
                          "instance), then run without --backup",
                          describe()));
}

std::optional<std::string> Driver::backup(const DbState& /*state*/) {
  check_backup();
  return std::nullopt;
}

bool sleep_unless_stopped(std::chrono::milliseconds pause, const std::atomic<bool>* stop) {
  constexpr std::chrono::milliseconds kSlice{20};
  const auto until = std::chrono::steady_clock::now() + pause;
  for (;;) {
    if (stop && stop->load()) return true;
    const auto now = std::chrono::steady_clock::now();
    if (now >= until) return false;
    std::this_thread::sleep_for(
        std::min<std::chrono::steady_clock::duration>(kSlice, until - now));
  }
}

}  // namespace dbstep
