// The PostgreSQL driver: ties the connection (connection.hpp), the statement split
// (statements.hpp), the pipeline that sends a migration (pipeline.hpp), the migration lock
// (lock.hpp), golang-migrate's version table (version_table.hpp), the history table
// (history_table.hpp) and drop (drop.hpp) into a dbstep::Driver.
//
// A migration that can run in a transaction costs one round trip once the session knows its
// tables exist: BEGIN, the file's statements, the history row, the fused compare-and-swap of the
// version row, COMMIT, sent together. The stored state is read again only when something in it
// fails, to tell "another process moved the version" (apply() returns false) from a failure of
// the migration itself (Error).

#include "drivers/postgres/postgres_driver.hpp"

#include <fmt/format.h>

#include <chrono>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/error.hpp"
#include "core/sql_text.hpp"
#include "drivers/postgres/connection.hpp"
#include "drivers/postgres/drop.hpp"
#include "drivers/postgres/history_table.hpp"
#include "drivers/postgres/lock.hpp"
#include "drivers/postgres/options.hpp"
#include "drivers/postgres/pipeline.hpp"
#include "drivers/postgres/pooler_check.hpp"
#include "drivers/postgres/schema_snapshot.hpp"
#include "drivers/postgres/statements.hpp"
#include "drivers/postgres/version_table.hpp"

namespace dbstep::drivers {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using pg::Connection;
using pg::Pipeline;
using pg::Script;
using pg::SqlFailure;

// Whether a failed history query says the table is not dbstep's shape: undefined column or
// function, datatype mismatch, a NOT NULL column dbstep does not fill, a value the column's type
// cannot take.
bool is_wrong_shape(std::string_view sqlstate) {
  return sqlstate == "42703" || sqlstate == "42883" || sqlstate == "42804" || sqlstate == "23502" ||
         sqlstate == "22P02";
}

bool is_missing_table(std::string_view sqlstate) {
  return sqlstate == "42P01" || sqlstate == "3F000";  // no table, or no schema for a quoted name
}

class PostgresDriver final : public Driver {
 public:
  PostgresDriver(const Url& url, pg::Options options);
  ~PostgresDriver() override;
  PostgresDriver(const PostgresDriver&) = delete;
  PostgresDriver& operator=(const PostgresDriver&) = delete;

  using Driver::lock;
  void lock(milliseconds timeout, const std::atomic<bool>* stop) override {
    lock_->lock(timeout, stop);
  }
  void unlock() override { lock_->unlock(); }
  DbState state() override;
  bool apply(const Step& step, const DbState& expected) override;
  bool apply_batch(const DbState& expected, const StepFeed& next) override;
  void set_state(const DbState& state) override;
  std::optional<std::vector<HistoryRow>> history() override;
  std::optional<std::vector<HistoryMark>> history_marks() override;
  std::optional<std::string> stored_down(Version version) override;
  std::map<Version, std::string> stored_downs(const std::vector<Version>& versions) override;
  void record_state(const DbState& state, const std::vector<HistoryRow>& rows) override;
  void drop() override;
  std::string describe() const override { return conn_.described(); }
  std::optional<StepPreview> preview(const Step& step) override { return pg::preview_of(step); }
  void interrupt() noexcept override { conn_.interrupt(); }
  void set_notice_handler(std::function<void(const DatabaseNotice&)> handler) override;
  // Schema snapshots and scratch databases: drivers/postgres/schema_snapshot.hpp.
  std::string schema_snapshot() override {
    return pg::schema_snapshot(conn_,
                               {options_.table, options_.history_table, options_.lock_table});
  }
  std::string create_scratch_database(const std::string& name) override {
    return pg::create_scratch_database(conn_, url_, name);
  }
  void drop_scratch_database(const std::string& name) override {
    pg::drop_scratch_database(conn_, name);
  }

 private:
  // An INSERT into the history table, and the migration it records (for messages).
  struct HistoryInsert {
    std::string sql;
    Version version = 0;
  };

  // Opens a transaction, creates the version table when missing (and, `with_history`, the
  // history table, or checks the shape of the one there), then locks the version table against
  // writers (readers still see the committed state) and reads it.
  DbState begin_and_read_state(bool with_history = false);
  // In the open transaction: creates the history table, or when it `exists` checks that it has
  // dbstep's columns (Error(kDatabase) and a rollback when not).
  void prepare_history(bool exists);
  // In the open transaction: appends `history`, replaces the version table's row with `state`
  // and commits, in one round trip. On failure rolls back and throws, naming what failed.
  void write_rows_and_commit(const DbState& state, const std::vector<HistoryInsert>& history = {});
  // {expected} -> {next} in a transaction of its own, with `history` appended; false (nothing
  // written) when the state is not `expected`.
  bool write_state_checked(const DbState& expected, const DbState& next,
                           const std::vector<HistoryInsert>& history = {});
  // The error for a history INSERT that failed: a table of another shape says so.
  [[noreturn]] void history_failed(Version version, const SqlFailure& f) const;
  // Error(kDatabase) for a history table of another shape, found while `doing`.
  Error shape_error(std::string_view doing, const SqlFailure& f) const;
  // After a commit: the tables the transaction created or checked are known to exist.
  void mark_committed() {
    table_ready_ = true;
    if (history_pending_) history_ready_ = true;
    history_pending_ = false;
  }
  // ROLLBACK if a transaction is open; whatever it created is gone.
  void rollback_quietly() noexcept {
    history_pending_ = false;
    conn_.rollback_quietly();
  }
  // Rows read from the history table with `sql`; nullopt when there is no such table.
  std::optional<pqxx::result> read_history(const std::string& sql, std::string_view doing);
  // After a migration failed and rolled back: whether the stored state is no longer `expected`
  // (another process moved it, which explains the failure). False when it cannot be read.
  bool state_moved(const DbState& expected) noexcept;

  // `retried`: this is the step's second try, after its history id was taken by a writer that
  // left the version as it was (see next_history_id_).
  bool apply_in_transaction(const Step& step, const Script& script, const DbState& expected,
                            bool retried = false);
  bool apply_outside_transaction(const Step& step, const Script& script, const DbState& expected);

  pg::Options options_;
  // Whether a connection pooler makes the advisory lock hold nothing (x-pooler; pooler_check.hpp).
  pg::PoolerCheck pooler_;
  Connection conn_;
  Url url_;  // as given: a scratch database's URL is made from it
  std::string schema_;  // current_schema()
  std::optional<pg::VersionTable> version_;
  std::optional<pg::HistorySql> history_;
  std::optional<pg::MigrationLock> lock_;
  bool table_ready_ = false;    // the version table is known to exist
  bool history_ready_ = false;  // the history table is known to exist, in dbstep's shape
  // begin_and_read_state() created or checked the history table in the open transaction.
  bool history_pending_ = false;
  // The file of the migration being applied, for the notices it raises.
  std::string running_file_;
  // The id of the history row apply_in_transaction() appends next, once read (max + 1) and then
  // counted: the INSERT then carries it as a literal rather than reading max(id) itself, which
  // costs the server about as much as the rest of the INSERT. Writers of the history hold the
  // migration lock, so nobody else takes an id meanwhile; should one have (the lock not taken),
  // the primary key refuses the row, the step rolls back, and it runs again once with the id
  // read anew. Forgotten after any other write of the history and after any failure.
  std::optional<std::int64_t> next_history_id_;
};

// Names the file running for the notices that come meanwhile.
class RunningFile {
 public:
  RunningFile(std::string& slot, const std::string& file) : slot_(slot) { slot_ = file; }
  ~RunningFile() { slot_.clear(); }
  RunningFile(const RunningFile&) = delete;
  RunningFile& operator=(const RunningFile&) = delete;

 private:
  std::string& slot_;
};

PostgresDriver::PostgresDriver(const Url& url, pg::Options options)
    : options_(std::move(options)), pooler_(url), conn_(url), url_(url) {
  if (options_.statement_timeout_ms > 0) {
    conn_.exec(fmt::format("SET statement_timeout = {}", options_.statement_timeout_ms),
               "setting x-statement-timeout");
  }
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
  lock_.emplace(conn_, options_, pooler_, r[0][2].as<int>(), database, schema_, table_schema);
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

DbState PostgresDriver::state() {
  auto [r, failed] = conn_.try_exec(version_->select());
  if (failed) {
    // No table is "nothing applied"; it is never created here.
    if (is_missing_table(failed->sqlstate)) return DbState{};
    conn_.fail(fmt::format("reading the version from {}", version_->name()), *failed);
  }
  return version_->parse(r);
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
  std::string begin = "BEGIN; ";
  history_pending_ = false;
  const bool check_history = with_history && !history_ready_;
  if (!table_ready_ || check_history) {
    conn_.exec("BEGIN", "starting a transaction");
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
  std::string why = f.message;
  if (!f.sqlstate.empty()) why += fmt::format(" (SQLSTATE {})", f.sqlstate);
  Error e(ErrorCode::kDatabase, conn_.scrub(fmt::format("{} on {} failed: {}", doing,
                                                        conn_.described(),
                                                        history_->wrong_shape(why))));
  e.sqlstate = f.sqlstate;
  e.detail = conn_.scrub(f.verbose);
  return e;
}

void PostgresDriver::history_failed(Version version, const SqlFailure& f) const {
  const std::string doing =
      fmt::format("recording the history of migration {} in {}", version, history_->name());
  if (is_wrong_shape(f.sqlstate)) throw shape_error(doing, f);
  conn_.fail(doing, f);
}

std::optional<pqxx::result> PostgresDriver::read_history(const std::string& sql,
                                                         std::string_view doing) {
  // In autocommit, outside any transaction: a failure leaves nothing open, and reading never
  // creates the table.
  auto [r, failed] = conn_.try_exec(sql);
  if (!failed) return std::move(r);
  rollback_quietly();
  if (is_missing_table(failed->sqlstate)) return std::nullopt;  // a database without history
  if (is_wrong_shape(failed->sqlstate)) throw shape_error(doing, *failed);
  conn_.fail(doing, *failed);
}

std::optional<std::vector<HistoryRow>> PostgresDriver::history() {
  auto r = read_history(history_->select(),
                        fmt::format("reading the history from {}", history_->name()));
  if (!r) return std::nullopt;
  std::vector<HistoryRow> rows;
  rows.reserve(r->size());
  std::vector<std::optional<std::string>> values(static_cast<std::size_t>(r->columns()));
  for (const auto& row : *r) {
    for (std::size_t c = 0; c < values.size(); ++c) {
      const auto f = row[static_cast<int>(c)];
      if (f.is_null()) {
        values[c].reset();
      } else {
        values[c].emplace(f.c_str(), f.size());
      }
    }
    rows.push_back(history_->parse_row(values));
  }
  return rows;
}

std::optional<std::vector<HistoryMark>> PostgresDriver::history_marks() {
  auto r = read_history(history_->select_marks(),
                        fmt::format("reading the history from {}", history_->name()));
  if (!r) return std::nullopt;
  std::vector<HistoryMark> marks;
  marks.reserve(r->size());
  auto text = [](const pqxx::field& f) -> std::optional<std::string_view> {
    if (f.is_null()) return std::nullopt;
    return std::string_view(f.c_str(), f.size());
  };
  for (const auto& row : *r) {
    marks.push_back(history_->parse_mark(text(row[0]), text(row[1]), text(row[2]), text(row[3])));
  }
  return marks;
}

std::optional<std::string> PostgresDriver::stored_down(Version version) {
  auto found = stored_downs({version});
  if (found.empty()) return std::nullopt;
  return std::move(found.begin()->second);
}

std::map<Version, std::string> PostgresDriver::stored_downs(const std::vector<Version>& versions) {
  std::map<Version, std::string> found;
  std::vector<Version> storable;  // the history's version column is a bigint
  for (Version v : versions) {
    if (v <= static_cast<Version>(std::numeric_limits<std::int64_t>::max())) storable.push_back(v);
  }
  if (storable.empty()) return found;
  const std::string doing = fmt::format("reading the stored down SQL of {} migration(s) from {}",
                                        storable.size(), history_->name());
  auto r = read_history(history_->select_downs(storable), doing);
  if (!r) return found;
  for (const auto& row : *r) {
    if (row[1].is_null()) continue;
    const auto version = row[0].as<std::int64_t>();
    auto bytes = pg::from_hex(std::string(row[1].c_str(), row[1].size()));
    if (!bytes) {
      throw Error(ErrorCode::kDatabase, fmt::format("{} on {}: the server did not send it as hex",
                                                    doing, conn_.described()));
    }
    found.emplace(static_cast<Version>(version), std::move(*bytes));
  }
  return found;
}

// ---------------------------------------------------------------------------------------------
// Migrations.

void PostgresDriver::set_notice_handler(std::function<void(const DatabaseNotice&)> handler) {
  if (!handler) {
    conn_.set_notice_handler(nullptr);
    return;
  }
  conn_.set_notice_handler([this, handler = std::move(handler)](std::string_view severity,
                                                                std::string_view text) {
    // Only a migration's own: the driver's bookkeeping (CREATE TABLE IF NOT EXISTS ...) is not
    // the user's business.
    if (running_file_.empty()) return;
    handler(DatabaseNotice{std::string(severity), conn_.scrub(text), running_file_});
  });
}

bool PostgresDriver::apply(const Step& step, const DbState& expected) {
  pg::version_literal(step.target);
  RunningFile running(running_file_, step.file);
  if (!step.has_file()) return apply_in_transaction(step, Script{}, expected);
  Script script = pg::analyze(step);
  if (script.outside_transaction) return apply_outside_transaction(step, script, expected);
  return apply_in_transaction(step, script, expected);
}

bool PostgresDriver::apply_in_transaction(const Step& step, const Script& script,
                                          const DbState& expected, bool retried) {
  const DbState done{step.target, false};
  const bool with_history = step.history.has_value();
  try {
    // The session's first write makes sure the version table (and the history table) exist,
    // in round trips of their own; after that BEGIN travels with the migration: the whole
    // migration, its history row and the version row included, is one round trip.
    const bool ready = table_ready_ && (!with_history || history_ready_);
    if (!ready && begin_and_read_state(with_history) != expected) {
      rollback_quietly();
      return false;
    }
    if (with_history && !next_history_id_) {
      // Once per session (and after a failure): in the open transaction when there is one.
      const pqxx::result r = conn_.exec(
          history_->next_id(), fmt::format("reading the history from {}", history_->name()));
      next_history_id_ = r[0][0].as<std::int64_t>();
    }
    Pipeline p(conn_, Pipeline::mode_for(step, script));
    std::size_t first = 0;  // the index of the file's first statement
    if (ready) {
      p.add("BEGIN");
      if (auto check = lock_->session_check_sql(); !check.empty()) p.add(check);
      first = p.size();
    }
    p.add_statements(step, script);
    const std::size_t bookkeeping = p.size();
    // The row's applied_at is the server's now(), the transaction's start; its duration runs
    // to the append, after the file's last statement.
    if (with_history) p.add(history_->insert(*step.history, std::nullopt, next_history_id_));
    const std::size_t version_write = p.size();
    p.add(version_->check_and_write(expected, done));
    const std::size_t commit = p.size();
    p.add("COMMIT");
    if (auto failed = p.finish()) {
      rollback_quietly();  // first: nothing below may leave the transaction open
      next_history_id_.reset();
      const std::size_t i = failed->index;
      const SqlFailure& f = failed->why;
      if (i == version_write && pg::is_state_moved(f.sqlstate)) return false;  // another won
      if (pg::PoolerCheck::is_lost_session(f.message)) {
        throw pooler_.lost_session_error(conn_.described());
      }
      // A failure anywhere else may still be the race's doing (the other process created the
      // same table first, took the next history id ...): the state, read again, tells.
      if (state_moved(expected)) return false;
      if (with_history && i == bookkeeping && f.sqlstate == "23505" && !retried) {
        // The id was taken, and the version left as it was: again, with the id read anew.
        return apply_in_transaction(step, script, expected, /*retried=*/true);
      }
      if (i < first) conn_.fail("starting a transaction", f);
      if (i < bookkeeping) throw pg::statement_error(conn_, step, script, i - first, f);
      if (with_history && i < version_write) history_failed(step.version, f);
      // Deferred constraints are checked at COMMIT, after the last statement.
      if (i == commit) throw pg::migration_error(conn_, step, nullptr, f, "at COMMIT");
      if (i == version_write) {
        conn_.fail(fmt::format("recording version {} in {}", to_string(done.version),
                               version_->name()),
                   f);
      }
      throw pg::migration_error(conn_, step, nullptr, f, "at its end");
    }
  } catch (...) {
    rollback_quietly();  // no path leaves a transaction open on the session
    next_history_id_.reset();
    throw;
  }
  mark_committed();
  if (with_history) ++*next_history_id_;
  return true;
}

bool PostgresDriver::apply_batch(const DbState& expected, const StepFeed& next) {
  next_history_id_.reset();  // its rows take max + 1
  if (begin_and_read_state() != expected) {
    rollback_quietly();
    return false;
  }
  try {
    std::optional<DbState> last;
    // Every step's row, written with the version row and COMMIT at the end, in the batch's
    // transaction. Their timing is the client's: the server's now() is the batch's start for
    // all of them, and a row sent in its step's pipeline could not know the step's duration.
    std::vector<HistoryInsert> history;
    while (const Step* step = next()) {
      const auto started_at = std::chrono::system_clock::now();
      const auto started = Clock::now();
      if (step->history && !history_ready_ && !history_pending_) {
        // Made ready inside the batch's transaction: a failed batch leaves no table behind.
        const pqxx::result r = conn_.exec_params("SELECT to_regclass($1) IS NOT NULL",
                                                 {history_->name()},
                                                 "looking for the history table");
        prepare_history(r[0][0].as<bool>());
      }
      if (step->has_file()) {
        RunningFile running(running_file_, step->file);
        Script script = pg::analyze(*step);
        if (script.outside_transaction) throw cannot_batch(*step, script.why_outside);
        // One round trip per migration, inside the batch's transaction.
        Pipeline p(conn_, Pipeline::mode_for(*step, script));
        p.add_statements(*step, script);
        if (auto failed = p.finish()) {
          throw pg::statement_error(conn_, *step, script, failed->index, failed->why);
        }
      }
      last = DbState{step->target, false};
      pg::version_literal(last->version);
      if (step->history) {
        const pg::HistorySql::Timing timing{
            format_utc(started_at),
            std::chrono::duration<double, std::milli>(Clock::now() - started).count()};
        history.push_back({history_->insert(*step->history, timing), step->version});
      }
    }
    if (!last) {
      rollback_quietly();
      return true;
    }
    std::optional<Pipeline::Failure> failed;
    std::size_t commit = 0;
    {
      Pipeline p(conn_, Pipeline::Mode::kOneQuery);
      for (const auto& h : history) p.add(h.sql);
      for (const auto& sql : version_->write(*last)) p.add(sql);
      commit = p.size();
      p.add("COMMIT");
      failed = p.finish();
    }
    if (failed && failed->index < history.size()) {
      rollback_quietly();
      history_failed(history[failed->index].version, failed->why);
    }
    if (failed && failed->index < commit) {
      rollback_quietly();
      conn_.fail(fmt::format("recording version {} in {}", to_string(last->version),
                             version_->name()),
                 failed->why);
    }
    if (failed) {
      // Deferred constraints are checked at COMMIT, after the last statement of the batch.
      SqlFailure f = failed->why;
      rollback_quietly();
      Error e(ErrorCode::kMigrationFailed,
              conn_.scrub(fmt::format("the migrations up to version {} failed at COMMIT: {}{}",
                                      to_string(last->version), f.message,
                                      f.sqlstate.empty() ? "" : " (SQLSTATE " + f.sqlstate + ")")));
      e.sqlstate = f.sqlstate;
      e.detail = conn_.scrub(f.verbose);
      throw e;
    }
  } catch (...) {
    rollback_quietly();
    throw;
  }
  mark_committed();
  return true;
}

bool PostgresDriver::apply_outside_transaction(const Step& step, const Script& script,
                                               const DbState& expected) {
  next_history_id_.reset();  // its rows take max + 1
  // The row is written after the file ran, outside the step's statements: its timing is the
  // client's (when the step started, and how long it took).
  const auto started_at = std::chrono::system_clock::now();
  const auto started = Clock::now();
  auto history_row = [&](std::optional<HistoryKind> kind) {
    std::vector<HistoryInsert> out;
    if (!step.history) return out;
    HistoryRow row = *step.history;
    if (kind) row.kind = *kind;
    const pg::HistorySql::Timing timing{
        format_utc(started_at),
        std::chrono::duration<double, std::milli>(Clock::now() - started).count()};
    out.push_back({history_->insert(row, timing), step.version});
    return out;
  };
  // golang-migrate's dirty protocol: whatever happens between the two writes is visible. The
  // history table is made ready with the dirty mark, so the last write cannot fail for want of it.
  if (begin_and_read_state(step.history.has_value()) != expected) {
    rollback_quietly();
    return false;
  }
  write_rows_and_commit(DbState{step.target, true});
  {
    // Not pipelined: the queries of one pipeline share an implicit transaction, which CREATE
    // INDEX CONCURRENTLY and the like refuse. Each statement runs and commits on its own.
    Pipeline p(conn_, Pipeline::Mode::kOneByOne);
    p.add_statements(step, script);
    std::optional<Error> error;
    if (auto failed = p.finish()) {
      error = pg::statement_error(conn_, step, script, failed->index, failed->why);
    } else if (conn_.in_transaction()) {
      SqlFailure f;
      f.message =
          "the file opens a transaction (BEGIN) that it does not end (COMMIT); it was "
          "rolled back";
      f.verbose = f.message;
      error = pg::migration_error(conn_, step, nullptr, f, "at its end");
    }
    if (error) {
      rollback_quietly();  // a transaction the file opened and did not finish
      // When no statement of the file was committed, the rollback took everything back: the
      // dirty mark is taken back too. Otherwise the database stays dirty for a person to see.
      if (!p.committed()) {
        try {
          write_state_checked(DbState{step.target, true}, expected);
        } catch (const Error&) {
          rollback_quietly();  // the migration's error matters more; the mark stays
        }
      } else if (step.history) {
        // The database stays dirty: the history says this step failed part way.
        try {
          auto failed_row = history_row(HistoryKind::kFailed);
          conn_.exec("BEGIN", "starting a transaction");
          conn_.exec(failed_row.front().sql,
                     fmt::format("recording the failure of migration {} in {}", step.version,
                                 history_->name()));
          conn_.exec("COMMIT", "recording the failure in the history");
        } catch (const Error&) {
          rollback_quietly();  // best effort: the migration's error matters more
        }
      }
      throw *error;
    }
  }
  conn_.exec("BEGIN", "starting a transaction");
  write_rows_and_commit(DbState{step.target, false}, history_row(std::nullopt));
  return true;
}

// ---------------------------------------------------------------------------------------------
// drop.

void PostgresDriver::drop() {
  pg::DropTargets targets;
  targets.schema = schema_;
  targets.version_table = version_->name();
  targets.history_table = history_->name();
  if (options_.lock_strategy == pg::LockStrategy::kTable) targets.keep_lock_table = options_.lock_table;
  pg::drop_everything(conn_, targets);
  next_history_id_.reset();
  table_ready_ = false;
  history_ready_ = false;
}

}  // namespace

std::uint32_t advisory_lock_key(std::string_view database_name,
                                std::initializer_list<std::string_view> additional) {
  return pg::lock_key(database_name, additional);
}

std::unique_ptr<Driver> open_postgres(const Url& url) {
  pg::Options options = pg::parse_options(url);
  try {
    return std::make_unique<PostgresDriver>(url, std::move(options));
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error(ErrorCode::kInternal,
                fmt::format("opening {}: {}", url.redacted(), redact_secrets(e.what())));
  }
}

}  // namespace dbstep::drivers
