// End-to-end: what SIGINT and SIGTERM do to a running `dbstep` (the README's "Ctrl-C" paragraph
// and exit codes), with real signals sent to the real binary on SQLite and on the PostgreSQL
// server at DBSTEP_TEST_POSTGRES_URL (without it the PostgreSQL cases fail, never skip):
// - the first signal lets the running migration finish, starts no other and exits 130 / 143,
//   also when the running migration was the run's last;
// - a signal while dbstep waits for another process's lock ends the wait at once;
// - a second signal cancels the running migration on the server, which rolls it back and
//   releases the lock before dbstep is gone for long, and exits 130 / 143.

#include <doctest/doctest.h>
#include <signal.h>

#include <SQLiteCpp/SQLiteCpp.h>
#include <fmt/format.h>

#include <chrono>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "core/driver.hpp"
#include "dbstep/dbstep.hpp"
#include "tests/e2e/run.hpp"
#include "tests/postgres_server.hpp"
#include "tests/support.hpp"

using namespace dbstep::testing;
using namespace std::chrono_literals;

namespace {

using Clock = std::chrono::steady_clock;

// A database for one case: a SQLite file in a temporary folder, or a PostgreSQL database of its
// own (dropped at the end). The migrations go in folder() / "m".
class Target {
 public:
  explicit Target(bool postgres) : postgres_(postgres) {
    if (!postgres_) {
      url_ = "sqlite://" + (tmp_ / "signals.db").string();
      return;
    }
    std::random_device rd;
    name_ = fmt::format("signals_{:08x}", rd());
    pg_exec(postgres_server_url(), "CREATE DATABASE " + name_);
    url_ = url_with_database(postgres_server_url(), name_);
  }
  ~Target() {
    if (!postgres_) return;
    try {
      pg_exec(postgres_server_url(), "DROP DATABASE IF EXISTS " + name_ + " WITH (FORCE)");
    } catch (...) {
    }
  }
  Target(const Target&) = delete;
  Target& operator=(const Target&) = delete;

  const std::string& url() const { return url_; }
  const std::filesystem::path& folder() const { return tmp_.path(); }
  std::string migrations() const { return (tmp_ / "m").string(); }
  void write_migration(const std::string& name, const std::string& sql) const {
    write_file(tmp_ / "m" / name, sql);
  }

  // What the version table says, read through dbstep's own driver.
  dbstep::DbState state() const {
    return dbstep::builtin_registry().open_driver(url_)->state();
  }
  bool has_table(const std::string& table) const {
    if (postgres_) {
      return pg_scalar(url_, fmt::format("SELECT count(*) FROM pg_tables WHERE schemaname = "
                                         "'public' AND tablename = '{}'",
                                         table)) == "1";
    }
    if (!std::filesystem::exists(tmp_ / "signals.db")) return false;
    SQLite::Database db((tmp_ / "signals.db").string());
    SQLite::Statement q(db, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?");
    q.bind(1, table);
    q.executeStep();
    return q.getColumn(0).getInt() == 1;
  }
  // Sessions other than the caller's on this PostgreSQL database, with what they run.
  std::string other_sessions() const {
    return pg_scalar(url_,
                     "SELECT string_agg(pid || ': ' || coalesce(query, ''), '; ') "
                     "FROM pg_stat_activity WHERE datname = current_database() "
                     "AND pid <> pg_backend_pid()");
  }
  // Advisory locks held on this PostgreSQL database.
  std::string advisory_locks() const {
    return pg_scalar(url_,
                     "SELECT string_agg(pid || ' holds ' || objid, '; ') FROM pg_locks "
                     "WHERE locktype = 'advisory' AND granted AND database = "
                     "(SELECT oid FROM pg_database WHERE datname = current_database())");
  }

 private:
  bool postgres_;
  TempDir tmp_;
  std::string name_;
  std::string url_;
};

// Waits (up to 5 s) until process `pid` catches SIGINT, as dbstep does from the start of a run
// (Linux: the SigCgt mask in /proc/PID/status).
void wait_until_catching_sigint(pid_t pid) {
  for (int i = 0; i < 500; ++i) {
    const std::string status = read_file(fmt::format("/proc/{}/status", pid));
    const auto at = status.find("SigCgt:");
    if (at != std::string::npos &&
        (std::stoull(status.substr(at + 7), nullptr, 16) & (1ULL << (SIGINT - 1))) != 0) {
      return;
    }
    std::this_thread::sleep_for(10ms);
  }
  FAIL("dbstep never caught SIGINT");
}

const char* signal_name(int sig) { return sig == SIGINT ? "SIGINT" : "SIGTERM"; }

// A migration that keeps SQLite busy for a second or two, and one that keeps PostgreSQL busy.
std::string slow_sql(bool postgres, const std::string& table, double pg_seconds) {
  if (postgres) return fmt::format("CREATE TABLE {} (i int);\nSELECT pg_sleep({});\n", table, pg_seconds);
  return fmt::format("CREATE TABLE {} AS WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 "
                     "FROM c WHERE x < 6000000) SELECT count(*) AS n FROM c;\n",
                     table);
}

void first_signal_during_last_migration(bool postgres) {
  for (int sig : {SIGINT, SIGTERM}) {
    CAPTURE(signal_name(sig));
    Target db(postgres);
    db.write_migration("1_first.up.sql", "CREATE TABLE first (i int);\n");
    db.write_migration("2_last.up.sql", slow_sql(postgres, "last", 1.5));
    Process p({"-d", db.url(), "-s", db.migrations(), "--verbose", "migrate", "all"},
              db.folder());
    p.wait_for_output("applying migration 2");
    ::kill(p.pid(), sig);
    auto r = p.wait();
    INFO("stdout: ", r.out, "\nstderr: ", r.err);
    // The migration that was running finished and is recorded; the exit code still says the run
    // was stopped (it was 0 before).
    CHECK(r.code == 128 + sig);
    CHECK(contains(r.out, "Applied migration 2: last"));
    CHECK(contains(r.err, "Stopped as asked: the database is at version 2"));
    CHECK(db.state() == dbstep::DbState{2, false});
    CHECK(db.has_table("last"));
  }
}

// Another process holds dbstep's lock (a driver of the library, in this process, takes the same
// lock the binary would); dbstep waits with a long --lock-timeout and is sent `sig`.
void signal_while_waiting_for_the_lock(bool postgres, const std::string& url_param) {
  for (int sig : {SIGINT, SIGTERM}) {
    CAPTURE(signal_name(sig));
    Target db(postgres);
    db.write_migration("1_first.up.sql", "CREATE TABLE first (i int);\n");
    std::string url = db.url();
    if (!url_param.empty()) url += (url.find('?') == std::string::npos ? "?" : "&") + url_param;
    auto holder = dbstep::builtin_registry().open_driver(url);
    holder->lock(0ms);
    Process p({"-d", url, "-s", db.migrations(), "--lock-timeout",
               "20", "migrate", "all"},
              db.folder());
    wait_until_catching_sigint(p.pid());
    std::this_thread::sleep_for(500ms);  // into the wait (its polls back off to 200-500 ms)
    const auto sent = Clock::now();
    ::kill(p.pid(), sig);
    auto r = p.wait();
    const auto took = Clock::now() - sent;
    INFO("stdout: ", r.out, "\nstderr: ", r.err);
    CHECK(r.code == 128 + sig);
    CHECK(took < 3s);  // not the 20 s timeout
    CHECK(contains(r.err, "waiting for the migration lock"));
    CHECK(contains(r.err, "nothing was applied"));
    CHECK_FALSE(contains(r.err, "error:"));
    CHECK_FALSE(db.has_table("first"));
    holder->unlock();
    CHECK(db.state() == dbstep::DbState{});
  }
}

}  // namespace

TEST_CASE("e2e signals sqlite: SIGINT or SIGTERM during the last migration lets it finish and exits 130 / 143") {
  first_signal_during_last_migration(false);
}

TEST_CASE("e2e signals postgres: SIGINT or SIGTERM during the last migration lets it finish and exits 130 / 143") {
  first_signal_during_last_migration(true);
}

TEST_CASE("e2e signals sqlite: a signal while waiting for the lock ends the wait, nothing applied") {
  signal_while_waiting_for_the_lock(false, "");
}

TEST_CASE("e2e signals postgres: a signal while waiting for the lock ends the wait, nothing applied") {
  signal_while_waiting_for_the_lock(true, "");
}

TEST_CASE("e2e signals postgres: a signal while waiting for the lock ends the wait (x-lock-strategy=table)") {
  signal_while_waiting_for_the_lock(true, "x-lock-strategy=table");
}

TEST_CASE("e2e signals postgres: a second signal cancels the running migration on the server and rolls it back") {
  for (int sig : {SIGINT, SIGTERM}) {
    CAPTURE(signal_name(sig));
    Target db(true);
    db.write_migration("1_first.up.sql", "CREATE TABLE first (i int);\n");
    // The whole migration travels to the server in one pipeline, COMMIT included.
    db.write_migration("2_slow.up.sql", slow_sql(true, "slow", 5));
    auto r = run_dbstep({"-d", db.url(), "-s", db.migrations(), "migrate", "1"}, db.folder());
    REQUIRE(r.code == 0);

    Process p({"-d", db.url(), "-s", db.migrations(), "--verbose", "migrate", "all"}, db.folder());
    p.wait_for_output("applying migration 2");
    // Until the server is inside pg_sleep.
    for (int i = 0; i < 500 && !contains(db.other_sessions(), "pg_sleep"); ++i) {
      std::this_thread::sleep_for(10ms);
    }
    REQUIRE(contains(db.other_sessions(), "pg_sleep"));
    ::kill(p.pid(), sig);
    std::this_thread::sleep_for(200ms);
    ::kill(p.pid(), sig);
    r = p.wait();
    INFO("stdout: ", r.out, "\nstderr: ", r.err);
    CHECK(r.code == 128 + sig);
    CHECK(contains(r.err, "Cancelling the running migration"));

    // The server ends the migration within a couple of seconds (not after pg_sleep's 5): its
    // session is gone and the lock released, nothing of migration 2 committed.
    const auto deadline = Clock::now() + 2500ms;
    std::string sessions = db.other_sessions(), locks = db.advisory_locks();
    while ((!sessions.empty() || !locks.empty()) && Clock::now() < deadline) {
      std::this_thread::sleep_for(20ms);
      sessions = db.other_sessions();
      locks = db.advisory_locks();
    }
    CHECK_MESSAGE(sessions.empty(), "dbstep's session still runs: ", sessions);
    CHECK_MESSAGE(locks.empty(), "the lock is still held: ", locks);
    CHECK_FALSE(db.has_table("slow"));
    CHECK(db.state() == dbstep::DbState{1, false});
  }
}

TEST_CASE("e2e signals sqlite: a second signal abandons the running migration, which rolls back") {
  Target db(false);
  db.write_migration("1_first.up.sql", "CREATE TABLE first (i int);\n");
  db.write_migration("2_slow.up.sql", slow_sql(false, "slow", 0));
  auto r = run_dbstep({"-d", db.url(), "-s", db.migrations(), "migrate", "1"}, db.folder());
  REQUIRE(r.code == 0);
  Process p({"-d", db.url(), "-s", db.migrations(), "--verbose", "migrate", "all"}, db.folder());
  p.wait_for_output("applying migration 2");
  ::kill(p.pid(), SIGINT);
  std::this_thread::sleep_for(100ms);
  const auto sent = Clock::now();
  ::kill(p.pid(), SIGINT);
  r = p.wait();
  INFO("stdout: ", r.out, "\nstderr: ", r.err);
  CHECK(r.code == 130);
  CHECK(Clock::now() - sent < 1s);  // at once, not after the migration
  CHECK_FALSE(contains(r.out, "Applied migration 2"));
  CHECK(db.state() == dbstep::DbState{1, false});
  CHECK_FALSE(db.has_table("slow"));
}
