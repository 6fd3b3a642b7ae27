#include "cli/signals.hpp"

#include <unistd.h>

#include <csignal>

namespace dbstep::cli {

namespace {

std::atomic<bool> g_stop{false};
volatile std::sig_atomic_t g_signal = 0;
std::atomic<Migrator*> g_migrator{nullptr};  // the running command's, while its run may be going

extern "C" void on_signal(int sig) {
  // Async-signal-safe calls only: write, the atomics, Migrator::interrupt, _exit.
  if (g_stop.exchange(true)) {
    const char msg[] = "\nCancelling the running migration and exiting\n";
    [[maybe_unused]] auto n = ::write(STDERR_FILENO, msg, sizeof msg - 1);
    if (Migrator* m = g_migrator.load()) m->interrupt();
    ::_exit(128 + sig);
  }
  g_signal = sig;
  const char msg[] =
      "\nStopping: a running migration finishes, no other starts (press Ctrl-C again to cancel "
      "it)\n";
  [[maybe_unused]] auto n = ::write(STDERR_FILENO, msg, sizeof msg - 1);
}

}  // namespace

const std::atomic<bool>* stop_flag() { return &g_stop; }

int stopped_exit_code() { return 128 + (g_signal ? static_cast<int>(g_signal) : SIGINT); }

SignalScope::SignalScope(Migrator& migrator) {
  g_stop.store(false);
  g_signal = 0;
  g_migrator.store(&migrator);
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  // One handler at a time: a SIGTERM must not interrupt the SIGINT handler half way.
  sigemptyset(&sa.sa_mask);
  sigaddset(&sa.sa_mask, SIGINT);
  sigaddset(&sa.sa_mask, SIGTERM);
  sigaction(SIGINT, &sa, &old_int_);
  sigaction(SIGTERM, &sa, &old_term_);
}

SignalScope::~SignalScope() {
  sigaction(SIGINT, &old_int_, nullptr);
  sigaction(SIGTERM, &old_term_, nullptr);
  g_migrator.store(nullptr);
}

}  // namespace dbstep::cli
