// The PostgreSQL driver: ties the connection (connection.hpp), the statement split
// (statements.hpp), the pipeline that sends a migration (pipeline.hpp), the migration lock
// (lock.hpp), golang-migrate's version table (version_table.hpp), the history table
// (history_table.hpp, history_reader.hpp) and drop (drop.hpp) into a dbstep::Driver
// (postgres_driver_impl.hpp). This file: connecting, the state, the history, drop; running
// migrations is apply.cpp.
//
// A migration that can run in a transaction costs one round trip once the session knows its
// tables exist: BEGIN, the file's statements, the history row, the fused compare-and-swap of the
// version row, COMMIT, sent together. The stored state is read again only when something in it
// fails, to tell "another process moved the version" (apply() returns false) from a failure of
// the migration itself (Error).

#include "drivers/postgres/postgres_driver.hpp"
#include "drivers/postgres/postgres_driver_impl.hpp"

#include <fmt/format.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/error.hpp"
#include "core/sql_text.hpp"
#include "drivers/postgres/connection.hpp"
#include "drivers/postgres/drop.hpp"
#include "drivers/postgres/history_reader.hpp"
#include "drivers/postgres/history_table.hpp"
#include "drivers/postgres/lock.hpp"
#include "drivers/postgres/options.hpp"
#include "drivers/postgres/pipeline.hpp"
#include "drivers/postgres/pooler_check.hpp"
#include "drivers/postgres/schema_snapshot.hpp"
#include "drivers/postgres/statements.hpp"
#include "drivers/postgres/version_table.hpp"

namespace dbstep::drivers {

namespace pg {

PostgresDriver::PostgresDriver(const Url& url, pg::Options options, bool wait)
    : options_(std::move(options)), pooler_(url), conn_(url, wait), url_(url) {
  if (wait) finish_opening();
}

void PostgresDriver::finish_opening() {
  conn_.finish_connecting();
  const pqxx::result r = conn_.exec("SELECT current_database(), current_schema(), pg_backend_pid()",
                                    "reading the current schema");
  const std::string database = r[0][0].as<std::string>();
  if (r[0][1].is_null()) {
    throw Error(ErrorCode::kDatabase,
                fmt::format("no schema: no schema on the search_path of {} exists, so there is "
                            "nowhere to keep the version table; create one or set search_path",
                            conn_.described()));
  }
  schema_ = r[0][1].as<std::string>();
  const std::string table_schema = options_.schema.value_or(schema_);
  version_.emplace(conn_.quote_name(table_schema) + "." + conn_.quote_name(options_.table),
                   /*merge=*/conn_.server_version() >= 150000);
  const std::string history = conn_.quote_name(options_.history_schema.value_or(table_schema)) +
                              "." + conn_.quote_name(options_.history_table);
  history_.emplace(history, history,
                   pg::Literals{[this](std::string_view v) { return conn_.quote(v); },
                                [this](std::string_view v) { return conn_.quote_bytes(v); }});
  const int server_pid = r[0][2].as<int>();
  lock_.emplace(conn_, options_, pooler_, server_pid, database, schema_, table_schema);
  if (options_.statement_timeout_ms > 0) {
    // x-statement-timeout: a setting of the session when the session is ours. Behind a pooler in
    // transaction mode a session SET would stay on whichever server session ran it, for the
    // pool's other clients, and miss the transactions that follow: each transaction the driver
    // opens sets it LOCAL instead (local_timeout_).
    if (pooler_.shares_server_sessions(conn_.backend_pid(), server_pid)) {
      local_timeout_ = fmt::format("SET LOCAL statement_timeout = {}", options_.statement_timeout_ms);
    } else {
      conn_.exec(fmt::format("SET statement_timeout = {}", options_.statement_timeout_ms),
                 "setting x-statement-timeout");
    }
  }
}

PostgresDriver::~PostgresDriver() {
  if (lock_ && lock_->held()) {
    try {
      lock_->unlock();
    } catch (...) {
      // The server releases session locks when the connection closes.
    }
  }
}

// ---------------------------------------------------------------------------------------------
// State.

DbState PostgresDriver::state() { return state_of(conn_.try_exec(version_->select())); }

DbState PostgresDriver::state_of(const Connection::QueryResult& read) {
  const auto& [r, failed] = read;
  if (failed) {
    // No table is "nothing applied"; it is never created here.
    if (is_missing_table(failed->sqlstate)) return DbState{};
    conn_.fail(fmt::format("reading the version from {}", version_->name()), *failed);
  }
  return version_->parse(r);
}

Driver::StateAndMarks PostgresDriver::state_and_marks() {
  // Both reads in one message: the marks are read for nothing when the state has no version,
  // which costs less than the round trip saved when it has.
  auto reads = conn_.try_exec_each({version_->select(), history_->select_marks()});
  StateAndMarks out;
  out.state = state_of(reads.at(0));
  if (!out.state.version) return out;  // nothing after a missing table ran
  try {
    out.marks = pg::history_marks_of(conn_, *history_, std::move(reads.at(1)));
  } catch (...) {
    out.marks_error = std::current_exception();
  }
  return out;
}

bool PostgresDriver::bookkeeping_tables_missing(bool with_history) noexcept {
  try {
    const pqxx::result r =
        conn_.exec_params("SELECT to_regclass($1) IS NULL, to_regclass($2) IS NULL",
                          {version_->name(), history_->name()}, "looking for the version table");
    return r[0][0].as<bool>() || (with_history && r[0][1].as<bool>());
  } catch (...) {
    return false;
  }
}

bool PostgresDriver::state_moved(const DbState& expected) noexcept {
  try {
    return state() != expected;
  } catch (...) {
    return false;  // the migration's own error is what to report
  }
}

void PostgresDriver::prepare_history(bool exists) {
  if (!exists) {
    conn_.exec(history_->create(), fmt::format("creating the history table {}", history_->name()));
  } else if (auto [probe, failed] = conn_.try_exec(history_->select() + " LIMIT 0"); failed) {
    const std::string doing = fmt::format("checking the history table {}", history_->name());
    // A table of that name that is not dbstep's (a user's own): nothing is written.
    rollback_quietly();
    if (is_wrong_shape(failed->sqlstate)) throw shape_error(doing, *failed);
    conn_.fail(doing, *failed);
  }
  history_pending_ = true;
}

DbState PostgresDriver::begin_and_read_state(bool with_history) {
  std::string begin = begin_sql() + "; ";
  history_pending_ = false;
  const bool check_history = with_history && !history_ready_;
  if (!table_ready_ || check_history) {
    conn_.exec(begin, "starting a transaction");
    begin.clear();
    // The third column: whether the session may UPDATE the version table, which the MERGE form
    // of the version write needs (a table made now is the session's own).
    const pqxx::result r = conn_.exec_params(
        "SELECT to_regclass($1) IS NOT NULL, to_regclass($2) IS NOT NULL, CASE WHEN "
        "to_regclass($1) IS NULL THEN true ELSE has_table_privilege($1, 'UPDATE') END",
        {version_->name(), history_->name()}, "looking for the version table");
    if (!table_ready_ && !r[0][0].as<bool>()) {
      conn_.exec(version_->create(), fmt::format("creating the version table {}", version_->name()));
    }
    if (!r[0][2].as<bool>()) version_->forgo_merge();
    if (check_history) prepare_history(r[0][1].as<bool>());
  }
  // One round trip when the table is known to exist.
  if (auto check = lock_->session_check_sql(); !check.empty()) begin += check + "; ";
  auto [r, failed] =
      conn_.try_exec(fmt::format("{}{}; {}", begin, version_->lock(), version_->select()));
  if (failed) {
    rollback_quietly();
    if (pg::PoolerCheck::is_lost_session(failed->message)) {
      throw pooler_.lost_session_error(conn_.described());
    }
    if (!begin.empty() && is_missing_table(failed->sqlstate)) {
      // The table this session made sure of is gone (another process ran drop): once more,
      // making sure of it anew, as a new session would.
      forget_tables();
      return begin_and_read_state(with_history);
    }
    conn_.fail(fmt::format("reading the version from {}", version_->name()), *failed);
  }
  return version_->parse(r);
}

void PostgresDriver::write_rows_and_commit(const DbState& s,
                                           const std::vector<HistoryInsert>& history) {
  const std::string doing =
      fmt::format("recording version {} in {}", to_string(s.version), version_->name());
  std::optional<Pipeline::Failure> failed;
  {
    Pipeline p(conn_, Pipeline::Mode::kOneQuery);
    for (const auto& h : history) p.add(h.sql);
    for (const auto& sql : version_->write(s)) p.add(sql);
    p.add("COMMIT");
    failed = p.finish();
  }
  if (failed) {
    rollback_quietly();
    if (failed->index < history.size()) history_failed(history[failed->index].version, failed->why);
    conn_.fail(doing, failed->why);
  }
  mark_committed();
}

bool PostgresDriver::write_state_checked(const DbState& expected, const DbState& next,
                                         const std::vector<HistoryInsert>& history) {
  pg::version_literal(next.version);  // fail before touching anything
  if (begin_and_read_state(!history.empty()) != expected) {
    rollback_quietly();
    return false;
  }
  write_rows_and_commit(next, history);
  return true;
}

void PostgresDriver::set_state(const DbState& s) {
  pg::version_literal(s.version);
  begin_and_read_state();
  write_rows_and_commit(s);
}

void PostgresDriver::record_state(const DbState& s, const std::vector<HistoryRow>& rows) {
  next_history_id_.reset();  // its rows take max + 1
  pg::version_literal(s.version);
  // Rows written by hand (force, baseline, repair) ran no SQL: now, and no duration.
  const pg::HistorySql::Timing now{format_utc(std::chrono::system_clock::now()), 0};
  std::vector<HistoryInsert> inserts;
  inserts.reserve(rows.size());
  for (const auto& row : rows) inserts.push_back({history_->insert(row, now), row.version});
  begin_and_read_state(!inserts.empty());
  write_rows_and_commit(s, inserts);
}

// ---------------------------------------------------------------------------------------------
// History.

Error PostgresDriver::shape_error(std::string_view doing, const SqlFailure& f) const {
  return pg::shape_error(conn_, *history_, doing, f);
}

void PostgresDriver::history_failed(Version version, const SqlFailure& f) const {
  const std::string doing =
      fmt::format("recording the history of migration {} in {}", version, history_->name());
  if (is_wrong_shape(f.sqlstate)) throw shape_error(doing, f);
  conn_.fail(doing, f);
}

// Reading the history: drivers/postgres/history_reader.hpp.

std::optional<std::vector<HistoryRow>> PostgresDriver::history() {
  return pg::read_history_rows(conn_, *history_);
}

std::optional<std::vector<HistoryMark>> PostgresDriver::history_marks() {
  return pg::read_history_marks(conn_, *history_);
}

std::map<Version, std::string> PostgresDriver::stored_downs(const std::vector<Version>& versions) {
  return pg::read_stored_downs(conn_, *history_, versions);
}

// ---------------------------------------------------------------------------------------------
// drop.

void PostgresDriver::drop() {
  pg::DropTargets targets;
  targets.schema = schema_;
  targets.version_table = version_->name();
  targets.history_table = history_->name();
  if (options_.lock_strategy == pg::LockStrategy::kTable) targets.keep_lock_table = options_.lock_table;
  targets.begin = begin_sql();
  pg::drop_everything(conn_, targets);
  forget_tables();
}

}  // namespace pg

std::uint32_t advisory_lock_key(std::string_view database_name,
                                std::initializer_list<std::string_view> additional) {
  return pg::lock_key(database_name, additional);
}

namespace {

// `open()`, with anything but dbstep's own errors (libpqxx's usage errors, bad_alloc) reported
// as an internal error naming the URL without its passwords.
template <typename Fn>
auto opening(const Url& url, Fn&& open) {
  try {
    return open();
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error(ErrorCode::kInternal,
                fmt::format("opening {}: {}", url.redacted(), redact_secrets(e.what())));
  }
}

}  // namespace

std::unique_ptr<Driver> open_postgres(const Url& url) {
  pg::Options options = pg::parse_options(url);
  return opening(url,
                 [&] { return std::make_unique<pg::PostgresDriver>(url, std::move(options)); });
}

PendingDriver start_postgres(const Url& url) {
  pg::Options options = pg::parse_options(url);
  auto started = std::make_shared<std::unique_ptr<pg::PostgresDriver>>(opening(url, [&] {
    return std::make_unique<pg::PostgresDriver>(url, std::move(options), /*wait=*/false);
  }));
  return [started, url]() -> std::unique_ptr<Driver> {
    std::unique_ptr<pg::PostgresDriver> driver = std::move(*started);
    opening(url, [&] { driver->finish_opening(); });
    return driver;
  };
}

}  // namespace dbstep::drivers
