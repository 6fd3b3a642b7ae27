#pragma once
// FileLock: an exclusive flock() on a lock file, held while the object lives, so that of several
// processes that want to build the same SQLite template one builds it and the others wait. The lock
// file stays in place (deleting it would race with a process about to lock it); the kernel releases
// the lock when the holder exits, crash included. Not for locking between threads of one process
// (flock() locks belong to the open file, and each FileLock opens its own).

#include <chrono>
#include <filesystem>
#include <string>

namespace dbstep::testing {

class FileLock {
 public:
  // Waits at most `timeout` for the lock on `path` (created if missing), then throws
  // Error(kLockTimeout) naming the file and `what` the holder is doing. Throws Error(kDatabase)
  // when the file cannot be created.
  FileLock(const std::filesystem::path& path, std::chrono::milliseconds timeout,
           const std::string& what);
  ~FileLock();
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

 private:
  int fd_ = -1;
};

}  // namespace dbstep::testing
