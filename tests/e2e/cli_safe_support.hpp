#pragma once
// Helpers for the cli-safe suites (safe defaults, create, backup): a folder's files byte for byte
// (to show a refused command changed nothing), and a dbstep run with a file-size limit or as an
// unprivileged user (to make a backup fail the way a full disk or a read-only folder does).

#include <pwd.h>
#include <sys/resource.h>
#include <unistd.h>

#include <SQLiteCpp/SQLiteCpp.h>

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "tests/e2e/run.hpp"
#include "tests/support.hpp"

namespace dbstep::testing {

// Every file under `dir` (relative name -> bytes), except dbstep's lock files (which a run
// leaves by design) and the runner's output files.
inline std::map<std::string, std::string> folder_bytes(const std::filesystem::path& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    const std::string rel = std::filesystem::relative(e.path(), dir).string();
    if (e.is_directory()) {
      out[rel + "/"] = "";
      continue;
    }
    const std::string name = e.path().filename().string();
    if (name.find(".dbstep-lock") != std::string::npos || name.rfind(".out-", 0) == 0 ||
        name.rfind(".err-", 0) == 0) {
      continue;
    }
    out[rel] = read_file(e.path());
  }
  return out;
}

inline long long sqlite_scalar(const std::filesystem::path& db, const std::string& sql) {
  SQLite::Database d(db.string());
  return d.execAndGet(sql).getInt64();
}

// A folder of migrations 1..n: table tN, each in its own file, with downs.
inline void write_table_migrations(const std::filesystem::path& dir, int n) {
  for (int i = 1; i <= n; ++i) {
    write_file(dir / (std::to_string(i) + "_t" + std::to_string(i) + ".up.sql"),
               "CREATE TABLE t" + std::to_string(i) + " (x int);\nINSERT INTO t" +
                   std::to_string(i) + " VALUES (" + std::to_string(i) + ");\n");
    write_file(dir / (std::to_string(i) + "_t" + std::to_string(i) + ".down.sql"),
               "DROP TABLE t" + std::to_string(i) + ";\n");
  }
}

struct Limits {
  std::optional<rlim_t> file_size;  // RLIMIT_FSIZE in bytes
  bool as_nobody = false;           // when root: run as user nobody, so permissions apply
};

// run_dbstep() with limits applied in the child.
inline RunResult run_dbstep_limited(const std::vector<std::string>& args,
                                    const std::filesystem::path& cwd, const Limits& limits) {
  const passwd* nobody = ::getpwnam("nobody");
  return Process(args, cwd, {},
                 [&] {
                   if (limits.file_size) {
                     rlimit r{*limits.file_size, *limits.file_size};
                     ::setrlimit(RLIMIT_FSIZE, &r);
                   }
                   if (limits.as_nobody && ::geteuid() == 0 && nobody) {
                     if (::setgid(nobody->pw_gid) != 0 || ::setuid(nobody->pw_uid) != 0) _exit(125);
                   }
                 })
      .wait();
}

}  // namespace dbstep::testing
