#pragma once
// Internal to the Migrator (core/migrator*.cpp): the RAII guard for a run's lock, and the error
// for a dirty database. Not part of the library's interface.

#include <atomic>
#include <chrono>

#include <fmt/format.h>

#include "core/driver.hpp"
#include "core/error.hpp"

namespace dbstep::detail {

// Holds the driver's lock for one run; releases it on every path. unlock() failures on the
// error path are swallowed: the original error is the one worth reporting.
class LockGuard {
 public:
  LockGuard(Driver& driver, std::chrono::milliseconds timeout, const std::atomic<bool>* stop)
      : driver_(driver) {
    driver_.lock(timeout, stop);
    held_ = true;
  }
  ~LockGuard() {
    if (held_) {
      try {
        driver_.unlock();
      } catch (...) {
      }
    }
  }
  void release() {
    held_ = false;
    driver_.unlock();
  }
  LockGuard(const LockGuard&) = delete;
  LockGuard& operator=(const LockGuard&) = delete;

 private:
  Driver& driver_;
  bool held_ = false;
};

inline Error dirty_error(const Driver& driver, const DbState& state) {
  Error e(ErrorCode::kDirty,
          fmt::format("{} is dirty at version {}: a migration that ran outside a transaction failed "
                      "part way, so its changes may be half applied. Repair the schema by hand, "
                      "then record the version it is really at with `dbstep force VERSION` "
                      "(golang-migrate: \"Dirty database version {}. Fix and force version.\")",
                      driver.describe(), to_string(state.version), to_string(state.version)));
  e.version = state.version;
  return e;
}

}  // namespace dbstep::detail
