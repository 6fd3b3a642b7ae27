#pragma once
// Runs the built `dbstep` binary as a user would: arguments, working folder, environment; returns
// its exit code and what it printed on stdout and stderr.

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "tests/support.hpp"

namespace dbstep::testing {

struct RunResult {
  int code = -1;
  std::string out;
  std::string err;
};

// A started dbstep process; wait() collects it. It runs in `cwd` with stdin from /dev/null, without
// DATABASE_URL and DBSTEP_SOURCE, with `env` set, and, when given, `in_child` called in the child
// just before exec (to set a resource limit, or drop root: async-signal-safe calls only, since the
// test process may have threads).
class Process {
 public:
  Process(const std::vector<std::string>& args, const std::filesystem::path& cwd,
          const std::map<std::string, std::string>& env = {},
          const std::function<void()>& in_child = {})
      : out_path_(cwd / (".out-" + std::to_string(counter()))),
        err_path_(cwd / (".err-" + std::to_string(counter()))) {
    pid_ = ::fork();
    if (pid_ == 0) {
      if (::chdir(cwd.c_str()) != 0) _exit(126);
      int in = ::open("/dev/null", O_RDONLY);
      int out = ::open(out_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      int err = ::open(err_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(in, 0);
      ::dup2(out, 1);
      ::dup2(err, 2);
      ::unsetenv("DATABASE_URL");
      ::unsetenv("DBSTEP_SOURCE");
      for (const auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);
      if (in_child) in_child();
      std::vector<char*> argv;
      std::string bin = DBSTEP_BINARY;
      argv.push_back(bin.data());
      std::vector<std::string> copy = args;
      for (auto& a : copy) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(bin.c_str(), argv.data());
      _exit(127);
    }
  }
  pid_t pid() const { return pid_; }
  std::string stdout_so_far() const { return read_file(out_path_); }
  // Waits (up to 5 s) until the process has printed `text` on stdout, e.g. its plan line, so a
  // test can act while the run is in progress.
  void wait_for_output(const std::string& text) const {
    for (int i = 0; i < 500 && stdout_so_far().find(text) == std::string::npos; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  RunResult wait() {
    int status = 0;
    ::waitpid(pid_, &status, 0);
    RunResult r;
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    r.out = read_file(out_path_);
    r.err = read_file(err_path_);
    std::filesystem::remove(out_path_);
    std::filesystem::remove(err_path_);
    return r;
  }

 private:
  static int counter() {
    static int n = 0;
    return n++;
  }
  std::filesystem::path out_path_, err_path_;
  pid_t pid_ = -1;
};

inline bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

inline RunResult run_dbstep(const std::vector<std::string>& args, const std::filesystem::path& cwd,
                            const std::map<std::string, std::string>& env = {}) {
  return Process(args, cwd, env).wait();
}

}  // namespace dbstep::testing
