#include "drivers/postgres/lock.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <zlib.h>

#include <algorithm>
#include <optional>

#include "core/driver.hpp"
#include "core/error.hpp"

namespace dbstep::drivers::pg {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::duration_cast;
using std::chrono::milliseconds;

std::string format_duration(milliseconds d) {
  if (d.count() % 1000 == 0) return fmt::format("{} s", d.count() / 1000);
  if (d.count() > 1000) return fmt::format("{:.1f} s", static_cast<double>(d.count()) / 1000.0);
  return fmt::format("{} ms", d.count());
}

}  // namespace

std::uint32_t lock_key(std::string_view database_name,
                       std::initializer_list<std::string_view> additional) {
  std::string s;
  for (auto part : additional) {
    s += part;
    s += '\0';
  }
  s += database_name;
  const auto crc = ::crc32(::crc32(0L, Z_NULL, 0), reinterpret_cast<const Bytef*>(s.data()),
                           static_cast<uInt>(s.size()));
  return static_cast<std::uint32_t>(crc) * 1486364155u;
}

MigrationLock::MigrationLock(Connection& conn, const Options& options, PoolerCheck& pooler,
                             int server_pid, const std::string& database,
                             const std::string& schema, const std::string& table_schema)
    : conn_(conn), options_(options), pooler_(pooler), server_pid_(server_pid), schema_(schema) {
  auto add_key = [&](std::uint32_t k) {
    if (std::find(keys_.begin(), keys_.end(), k) == keys_.end()) keys_.push_back(k);
  };
  const std::string& path = conn_.url_path();
  if (options_.lock_strategy == LockStrategy::kAdvisory) {
    add_key(lock_key(database, {table_schema, options_.table}));
    if (!path.empty()) add_key(lock_key(path, {table_schema, options_.table}));
  } else {
    // golang-migrate's pgx driver keys its lock table by the database name alone.
    add_key(lock_key(database));
    if (!path.empty()) add_key(lock_key(path));
  }
}

std::string MigrationLock::lock_table_name() const {
  return conn_.quote_name(schema_) + "." + conn_.quote_name(options_.lock_table);
}

void MigrationLock::lock(milliseconds timeout, const std::atomic<bool>* stop) {
  if (held_) {
    throw Error(ErrorCode::kLocked,
                fmt::format("{} is already locked by this process", conn_.described()));
  }
  milliseconds wait = options_.lock_timeout.value_or(timeout);
  if (wait.count() < 0) wait = milliseconds(0);
  if (options_.lock_strategy == LockStrategy::kAdvisory) {
    // Behind a pooler in transaction mode the advisory lock would hold nothing: refused.
    pooler_.check_advisory_lock(conn_.backend_pid(), server_pid_, conn_.described());
    lock_advisory(wait, stop);
  } else {
    lock_table(wait, stop);
  }
  held_ = true;
}

void MigrationLock::unlock() {
  if (!held_) {
    throw Error(ErrorCode::kLocked,
                fmt::format("can't unlock {}, as not currently locked", conn_.described()));
  }
  held_ = false;
  if (options_.lock_strategy == LockStrategy::kAdvisory) {
    std::vector<std::string> unlocks;
    for (auto k : keys_) unlocks.push_back(fmt::format("pg_advisory_unlock({})", k));
    conn_.exec(fmt::format("SELECT {}", fmt::join(unlocks, ", ")), "releasing the migration lock");
  } else {
    conn_.exec(fmt::format("DELETE FROM {} WHERE lock_id IN ({})", lock_table_name(),
                           fmt::join(keys_, ", ")),
               "releasing the migration lock");
  }
}

void MigrationLock::stopped(milliseconds waited, std::string_view lock,
                            std::string_view holder) const {
  throw Error(ErrorCode::kStopped,
              conn_.scrub(fmt::format("stopped after {} waiting for the migration lock ({}) on "
                                      "{}: nothing was applied; {}",
                                      format_duration(waited), lock, conn_.described(), holder)));
}

void MigrationLock::lock_advisory(milliseconds timeout, const std::atomic<bool>* stop) {
  const auto started = Clock::now();
  const auto deadline = started + timeout;
  std::vector<std::string> tries;
  for (auto key : keys_) tries.push_back(fmt::format("pg_try_advisory_lock({})", key));
  const std::string sql = fmt::format("SELECT {}", fmt::join(tries, ", "));
  auto pause = milliseconds(5);
  for (;;) {
    const pqxx::result r = conn_.exec(sql, "taking the migration lock");
    std::vector<std::string> unlocks;
    std::optional<std::uint32_t> missing;
    for (std::size_t i = 0; i < keys_.size(); ++i) {
      if (r[0][static_cast<int>(i)].as<bool>()) {
        unlocks.push_back(fmt::format("pg_advisory_unlock({})", keys_[i]));
      } else if (!missing) {
        missing = keys_[i];
      }
    }
    if (!missing) return;
    if (!unlocks.empty()) {  // all keys or none: give back the ones we got
      conn_.try_exec(fmt::format("SELECT {}", fmt::join(unlocks, ", ")));
    }
    const auto now = Clock::now();
    if (now >= deadline) {
      throw Error(ErrorCode::kLockTimeout,
                  conn_.scrub(fmt::format(
                      "timed out after {} waiting for the migration lock (advisory lock {}) on "
                      "{}: {}",
                      format_duration(duration_cast<milliseconds>(now - started)), *missing,
                      conn_.described(), advisory_holder(*missing))));
    }
    if (sleep_unless_stopped(
            std::min(pause, duration_cast<milliseconds>(deadline - now) + milliseconds(1)),
            stop)) {
      stopped(duration_cast<milliseconds>(Clock::now() - started),
              fmt::format("advisory lock {}", *missing), advisory_holder(*missing));
    }
    pause = std::min(pause * 2, milliseconds(200));
  }
}

std::string MigrationLock::advisory_holder(std::uint32_t key) {
  std::string holder = "another session holds it";
  auto [r, failed] = conn_.try_exec_params(
      "SELECT l.pid, a.application_name, host(a.client_addr), a.usename, "
      "to_char(a.backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'), a.state, "
      "to_char(a.state_change AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') "
      "FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid "
      "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
      "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
      "AND l.classid::bigint = 0 AND l.objid::bigint = $1::bigint "
      "AND l.pid <> pg_backend_pid() LIMIT 1",
      {std::to_string(key)});
  if (failed || r.empty()) return holder;
  const auto row = r[0];
  auto text = [&](int c) { return row[c].is_null() ? std::string() : row[c].as<std::string>(); };
  const std::string pid = text(0);
  std::vector<std::string> facts;
  if (auto app = text(1); !app.empty()) facts.push_back(fmt::format("application \"{}\"", app));
  if (auto user = text(3); !user.empty()) facts.push_back(fmt::format("user {}", user));
  auto addr = text(2);
  facts.push_back(addr.empty()
                      ? std::string("client on a local socket (or not visible to this user)")
                      : fmt::format("client {}", addr));
  if (auto since = text(4); !since.empty())
    facts.push_back(fmt::format("connected since {} UTC", since));
  if (auto st = text(5); !st.empty()) facts.push_back(fmt::format("{} since {} UTC", st, text(6)));
  return fmt::format(
      "PostgreSQL session {} holds it ({}); if that run is over or stuck, end it with SELECT "
      "pg_terminate_backend({})",
      pid, fmt::join(facts, ", "), pid);
}

void MigrationLock::lock_table(milliseconds timeout, const std::atomic<bool>* stop) {
  const auto started = Clock::now();
  const auto deadline = started + timeout;
  auto left_ms = [&] {
    return std::max<std::int64_t>(
        1, duration_cast<milliseconds>(deadline - Clock::now()).count());
  };
  const std::string table = lock_table_name();
  // The lock table, created under the same timeout.
  for (int attempt = 0;; ++attempt) {
    auto [r, failed] = conn_.try_exec(fmt::format(
        "BEGIN; SET LOCAL statement_timeout = 0; SET LOCAL lock_timeout = {}; "
        "CREATE TABLE IF NOT EXISTS {} (lock_id BIGINT NOT NULL PRIMARY KEY); COMMIT",
        left_ms(), table));
    if (!failed) break;
    conn_.rollback_quietly();
    // Two processes creating it at once: one loses on the catalog's unique index, on the table
    // (42P07) or on its row type (42710 "type ... already exists"); look again.
    if ((failed->sqlstate == "23505" || failed->sqlstate == "42P07" ||
         failed->sqlstate == "42710") &&
        attempt < 3) {
      continue;
    }
    if (failed->sqlstate == "55P03" || Clock::now() >= deadline) break;  // reported below
    conn_.fail(fmt::format("creating the lock table {}", table), *failed);
  }
  const std::string values = fmt::format("({})", fmt::join(keys_, "), ("));
  auto pause = milliseconds(20);
  for (;;) {
    auto [r, failed] = conn_.try_exec(fmt::format(
        "BEGIN; SET LOCAL statement_timeout = 0; SET LOCAL lock_timeout = {}; "
        "INSERT INTO {} (lock_id) VALUES {} ON CONFLICT DO NOTHING",
        left_ms(), table, values));
    if (!failed && r.affected_rows() == keys_.size()) {
      conn_.exec("COMMIT", "taking the migration lock");
      return;
    }
    conn_.rollback_quietly();
    if (failed && failed->sqlstate != "55P03" && failed->sqlstate != "42P01") {
      conn_.fail("taking the migration lock", *failed);
    }
    if (Clock::now() >= deadline) break;
    if (sleep_unless_stopped(
            std::min(pause, duration_cast<milliseconds>(deadline - Clock::now())), stop)) {
      stopped(duration_cast<milliseconds>(Clock::now() - started),
              fmt::format("lock table {}", table),
              fmt::format("another process holds lock_id {}", fmt::join(keys_, ", ")));
    }
    pause = std::min(pause * 2, milliseconds(500));
  }
  const std::string ids = fmt::format("{}", fmt::join(keys_, ", "));
  throw Error(ErrorCode::kLockTimeout,
              conn_.scrub(fmt::format(
                  "timed out after {} waiting for the migration lock on {}: the lock table {} "
                  "holds lock_id {} for another process (x-lock-strategy=table cannot tell "
                  "which). If no migration is running, a crashed run left it behind: DELETE "
                  "FROM {} WHERE lock_id IN ({})",
                  format_duration(duration_cast<milliseconds>(Clock::now() - started)),
                  conn_.described(), table, ids, table, ids)));
}

}  // namespace dbstep::drivers::pg
