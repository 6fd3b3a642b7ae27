#include "drivers/sqlite/lock_file.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "core/driver.hpp"
#include "core/error.hpp"

namespace dbstep::drivers::sqlite {

void LockFile::acquire(std::chrono::milliseconds timeout, const std::atomic<bool>* stop) {
  int fd = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return;  // no lock file here: the state check remains
  const auto started = std::chrono::steady_clock::now();
  const auto deadline = started + timeout;
  // Closes fd and says who holds the lock (the holder writes its pid into the
  // file).
  auto give_up = [&] {
    char holder[32] = {};
    [[maybe_unused]] auto n = ::pread(fd, holder, sizeof holder - 1, 0);
    ::close(fd);
    std::string pid(holder);
    while (!pid.empty() && (pid.back() == '\n' || pid.back() == ' ')) pid.pop_back();
    return fmt::format("{} holds {}", pid.empty() ? "another process" : "process " + pid, path_);
  };
  auto pause = std::chrono::milliseconds(2);
  while (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    if (errno != EWOULDBLOCK && errno != EINTR) break;  // no flock here: the state check remains
    if (std::chrono::steady_clock::now() >= deadline) {
      throw Error(ErrorCode::kLockTimeout,
                  fmt::format("timed out after {} ms waiting for the migration lock on {}: {}",
                              timeout.count(), database_, give_up()));
    }
    if (sleep_unless_stopped(pause, stop)) {
      const auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(
          std::chrono::steady_clock::now() - started);
      throw Error(ErrorCode::kStopped,
                  fmt::format("stopped after {} ms waiting for the migration lock on {}: "
                              "nothing was applied; {}",
                              waited.count(), database_, give_up()));
    }
    pause = std::min(pause * 2, std::chrono::milliseconds(50));
  }
  // Say who holds it, for the next process's timeout message.
  std::string me = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd, 0) == 0) {
    [[maybe_unused]] auto n = ::pwrite(fd, me.data(), me.size(), 0);
  }
  fd_ = fd;
}

void LockFile::release() noexcept {
  if (fd_ >= 0) {
    if (::ftruncate(fd_, 0) != 0) {
      // Only the holder's pid is lost; the lock itself goes with close().
    }
    ::close(fd_);  // releases the flock
    fd_ = -1;
  }
}

}  // namespace dbstep::drivers::sqlite
