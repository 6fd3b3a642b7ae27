#pragma once
// Migration versions. A version is the unsigned 64-bit number at the front of a migration's file
// name; "no version" (nothing applied, golang-migrate's NilVersion -1) is an empty optional.

#include <cstdint>
#include <optional>
#include <string>

namespace dbstep {

using Version = std::uint64_t;
using OptVersion = std::optional<Version>;

// "4" or "none": how versions appear in messages.
std::string to_string(const OptVersion& v);

// Orders "none" before every version, as golang-migrate's -1 does.
inline bool version_less(const OptVersion& a, const OptVersion& b) {
  if (!b) return false;
  if (!a) return true;
  return *a < *b;
}

}  // namespace dbstep
