#pragma once
// The SQLite driver's run lock: an exclusive flock() on a file beside the
// database, <db>.dbstep-lock, held from Driver::lock() to Driver::unlock().
//
// SQLite has no lock that outlives a transaction; this one keeps a second
// dbstep process from reading the state while this one runs a migration outside
// a transaction (where it would see "dirty"). golang-migrate does not take it;
// apply()'s state check inside BEGIN IMMEDIATE keeps the two from applying a
// migration twice. The holder writes its pid into the file, for the next
// process's timeout message. The file is left in place (deleting a lock file
// races with its next user). Where the file cannot be created (a read-only
// folder), or the file system has no flock(), acquire() takes nothing and only
// the state check remains. Used from the driver's thread.

#include <atomic>
#include <chrono>
#include <string>

namespace dbstep::drivers::sqlite {

class LockFile {
 public:
  // `database_path`: the database file; `database`: as the driver describes it,
  // for messages.
  LockFile(const std::string& database_path, std::string database)
      : path_(database_path + ".dbstep-lock"), database_(std::move(database)) {}
  LockFile(const LockFile&) = delete;
  LockFile& operator=(const LockFile&) = delete;
  ~LockFile() { release(); }

  // Waits at most `timeout` for the lock, polling. Throws Error(kLockTimeout)
  // or, when *stop became true meanwhile, Error(kStopped), each naming the
  // process that holds it.
  void acquire(std::chrono::milliseconds timeout, const std::atomic<bool>* stop);
  // Lets the lock go (closing the file releases the flock); nothing when not
  // held.
  void release() noexcept;

 private:
  std::string path_;
  std::string database_;
  int fd_ = -1;  // the flock()ed file while held
};

}  // namespace dbstep::drivers::sqlite
