#pragma once
// Shared by the fuzz targets: how a failing input is shown in a report.

#include <cstdio>
#include <string>
#include <string_view>

namespace dbstep::fuzz {

// Bytes as C escapes, so a report shows NUL and control bytes.
inline std::string escaped(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (c >= ' ' && c < 0x7f && c != '\\') {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  return out;
}

}  // namespace dbstep::fuzz
