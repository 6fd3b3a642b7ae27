#pragma once
// The migration lock on PostgreSQL: what keeps two dbstep (or golang-migrate) processes from
// migrating one database at once, for the length of one run.
//
// Two strategies (x-lock-strategy):
// - advisory (default): session advisory locks with golang-migrate's key (advisory_lock_key),
//   polled with pg_try_advisory_lock in autocommit, never waited for inside a statement (a
//   session blocked in pg_advisory_lock holds a snapshot, and a CREATE INDEX CONCURRENTLY run by
//   the holder waits for every older snapshot: the two would deadlock). dbstep holds two keys,
//   the one golang-migrate's library computes (current_database()) and the one its CLI computes
//   from the URL's path ("/dbname"), so it excludes either kind of golang-migrate run.
// - table: a row per key in a lock table (golang-migrate's pgx driver's way), for poolers that
//   do not keep sessions (PgBouncer's transaction mode); the table is created under the same
//   timeout. A crashed run leaves its row behind: the timeout message gives the DELETE.
// The wait is bounded by the timeout, table creation included; on timeout the error names the
// session holding the lock where the server can tell. A stop request ends the wait at once.
//
// A MigrationLock works on the driver's connection and is used from the driver's thread.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "drivers/postgres/connection.hpp"
#include "drivers/postgres/options.hpp"
#include "drivers/postgres/pooler_check.hpp"

namespace dbstep::drivers::pg {

// golang-migrate's GenerateAdvisoryLockId: the CRC-32 (IEEE, zlib's crc32()) of `additional`
// and then `database_name` joined by NUL bytes, times 1486364155, modulo 2^32.
std::uint32_t lock_key(std::string_view database_name,
                       std::initializer_list<std::string_view> additional = {});

class MigrationLock {
 public:
  // The lock of the version table `table` in `table_schema` of database `database` (as
  // current_database() names it); `schema` is the current schema, where the lock table lives.
  // `pooler` (borrowed) refuses the advisory strategy behind a pooler that would make it hold
  // nothing (pooler_check.hpp); `server_pid` is the session's pg_backend_pid().
  MigrationLock(Connection& conn, const Options& options, PoolerCheck& pooler, int server_pid,
                const std::string& database, const std::string& schema,
                const std::string& table_schema);

  // Takes the lock, waiting at most `timeout` (x-lock-timeout overrides it). Throws
  // Error(kLockTimeout) naming the holder, Error(kStopped) when *stop became true meanwhile,
  // Error(kLocked) when already held.
  void lock(std::chrono::milliseconds timeout, const std::atomic<bool>* stop);
  // Releases it. Throws Error(kLocked) when not held.
  void unlock();
  bool held() const { return held_; }
  // Whether the session is surely the driver's alone while the lock is held: the advisory lock,
  // taken on a direct connection (no pooler seen, none declared). Session state (a prepared
  // statement) then lasts the run.
  bool session_is_ours() const {
    return held_ && options_.lock_strategy == LockStrategy::kAdvisory && !pooler_.behind_pooler();
  }
  // A statement for each writing transaction that fails unless its server session holds the
  // lock (PoolerCheck::migration_check_sql); empty when there is nothing to check.
  std::string session_check_sql() const {
    return held_ ? pooler_.migration_check_sql(keys_) : std::string();
  }

  // The lock table (x-lock-strategy=table), quoted; drop() keeps it.
  std::string lock_table_name() const;

 private:
  void lock_advisory(std::chrono::milliseconds timeout, const std::atomic<bool>* stop);
  void lock_table(std::chrono::milliseconds timeout, const std::atomic<bool>* stop);
  // Who holds advisory lock `key`, and how to end that session, as far as pg_locks can tell.
  std::string advisory_holder(std::uint32_t key);
  [[noreturn]] void stopped(std::chrono::milliseconds waited, std::string_view lock,
                            std::string_view holder) const;

  Connection& conn_;
  const Options& options_;
  PoolerCheck& pooler_;
  int server_pid_;
  std::string schema_;
  std::vector<std::uint32_t> keys_;
  bool held_ = false;
};

}  // namespace dbstep::drivers::pg
