#include "drivers/postgres/pooler_check.hpp"

#include <fmt/format.h>

namespace dbstep::drivers::pg {

namespace {

// Carried by migration_check_sql()'s error (a cast of it to int fails and the server quotes it),
// so the failure is told from any other, whichever statement index a driver path maps it to.
constexpr std::string_view kLostSessionMark = "dbstep: this server session does not hold";

constexpr std::string_view kWhatToDo =
    "Nothing was locked or changed. Add x-lock-strategy=table to the URL (a row in a lock table, "
    "which holds through any pooler), or connect to PostgreSQL directly";

}  // namespace

PoolerCheck::PoolerCheck(const Url& url) {
  if (auto v = url.param("x-pooler"); v && !v->empty()) {
    if (*v == "session") {
      mode_ = Mode::kSession;
    } else if (*v == "transaction") {
      mode_ = Mode::kTransaction;
    } else {
      throw Error(ErrorCode::kInvalidArgument,
                  fmt::format("unknown pool mode \"{}\" in x-pooler (use session, for a pooler "
                              "that keeps one server session per client, or transaction)",
                              *v));
    }
  }
}

void PoolerCheck::check_advisory_lock(int protocol_pid, int server_pid,
                                      std::string_view described) {
  const bool detected = protocol_pid != server_pid;
  if (mode_ == Mode::kTransaction) {
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("{} goes through a connection pooler in transaction mode "
                            "(x-pooler=transaction), where the session advisory lock of "
                            "x-lock-strategy=advisory (the default) would not hold: each "
                            "transaction may run on another server session. {}",
                            described, kWhatToDo));
  }
  if (detected && mode_ != Mode::kSession) {
    throw Error(
        ErrorCode::kInvalidArgument,
        fmt::format(
            "{} goes through a connection pooler (PgBouncer or the like: the server session is "
            "process {}, the connection was given process id {} at login), and behind a pooler "
            "in transaction mode the session advisory lock of x-lock-strategy=advisory (the "
            "default) holds nothing: it stays on one server session while the migrations run "
            "on others. {}. If the pooler runs in session mode (one server session per client, "
            "PgBouncer's pool_mode = session), add x-pooler=session to keep the advisory lock",
            described, server_pid, protocol_pid, kWhatToDo));
  }
  behind_pooler_ = detected;
}

std::string PoolerCheck::migration_check_sql(const std::vector<std::uint32_t>& keys) const {
  if (!behind_pooler_ || keys.empty()) return {};
  // golang-migrate's keys are single bigints below 2^32: pg_locks shows them as classid 0,
  // objid = the key, objsubid 1. The CASE's ELSE is not constant (pg_backend_pid() is only
  // stable), so it is evaluated, and fails, only when the count is short.
  return fmt::format(
      "SELECT CASE WHEN count(*) = {} THEN 1 ELSE ('{} the migration lock (process ' || "
      "pg_backend_pid() || ')')::int END FROM pg_catalog.pg_locks WHERE locktype = 'advisory' "
      "AND granted AND pid = pg_backend_pid() AND classid = 0 AND objsubid = 1 AND "
      "objid::bigint IN ({}) AND database = (SELECT oid FROM pg_catalog.pg_database WHERE "
      "datname = current_database())",
      keys.size(), kLostSessionMark, fmt::join(keys, ", "));
}

bool PoolerCheck::is_lost_session(std::string_view message) {
  return message.find(kLostSessionMark) != std::string_view::npos;
}

Error PoolerCheck::lost_session_error(std::string_view described) {
  return Error(
      ErrorCode::kInvalidArgument,
      fmt::format("{}: a migration's transaction ran on a server session that does not hold the "
                  "advisory lock taken for the run, so the connection pooler in between "
                  "(x-pooler=session) does not keep one server session per client: it pools in "
                  "transaction mode. The migration was rolled back, nothing of it was applied. "
                  "Use x-lock-strategy=table (and drop x-pooler=session) behind this pooler",
                  described));
}

}  // namespace dbstep::drivers::pg
