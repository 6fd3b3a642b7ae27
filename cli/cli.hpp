#pragma once
// The `dbstep` command line. run() parses the arguments, runs one command through the public
// Migrator API and returns the exit code; it never calls exit(). Normal output goes to `out`,
// errors and warnings to `err`.
//
// Exit codes: 0 success (nothing to do included), 1 the run failed (validate: problems found),
// 2 usage error, 3 `status --exit-code` found migrations pending, 4 fewer migrations were
// available than requested (those that were available were applied), 130 / 143 stopped by SIGINT / SIGTERM: the first lets the running migration finish (or ends
// the wait for the lock), a second cancels the running migration, which rolls back.

#include <ostream>
#include <string>
#include <vector>

namespace dbstep::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitPending = 3;
inline constexpr int kExitShort = 4;

int run(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace dbstep::cli
