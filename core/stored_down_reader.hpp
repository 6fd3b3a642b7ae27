#pragma once
// Internal to the Migrator (core/migrator*.cpp, core/dry_run.cpp): reads the down SQL stored in
// the history for a plan's down steps through Driver::stored_downs(), one query per window of
// steps instead of one per step (a rollback of 1,000 migrations on a server asks 4 times, not
// 1,000). Holds at most one window's SQL. Lives as long as the plan it reads for: a plan made
// again (another process moved the database) gets a new reader.

#include <algorithm>
#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/driver.hpp"
#include "core/plan.hpp"

namespace dbstep::detail {

class StoredDownReader {
 public:
  StoredDownReader(Driver& driver, const Plan& plan) : driver_(driver), plan_(plan) {}

  // The stored down SQL of plan.steps[i] (a down step), or nullopt when none is stored. Each
  // step's SQL is handed out once.
  std::optional<std::string> take(std::size_t i) {
    if (i < begin_ || i >= end_) read_window(i);
    auto it = sql_.find(plan_.steps[i].version);
    if (it == sql_.end()) return std::nullopt;
    std::optional<std::string> out(std::move(it->second));
    sql_.erase(it);
    return out;
  }

 private:
  static constexpr std::size_t kWindow = 256;

  void read_window(std::size_t i) {
    begin_ = i;
    end_ = std::min(plan_.steps.size(), i + kWindow);
    std::vector<Version> versions;
    for (std::size_t k = begin_; k < end_; ++k) {
      if (plan_.steps[k].direction == Direction::kDown) versions.push_back(plan_.steps[k].version);
    }
    sql_ = versions.empty() ? std::map<Version, std::string>() : driver_.stored_downs(versions);
  }

  Driver& driver_;
  const Plan& plan_;
  std::size_t begin_ = 0;
  std::size_t end_ = 0;
  std::map<Version, std::string> sql_;
};

}  // namespace dbstep::detail
