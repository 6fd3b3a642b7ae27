// The PostgreSQL driver running migrations (postgres_driver_impl.hpp): one step in a
// transaction, as one message with its history row and the version write (apply_in_transaction),
// one that cannot run in a transaction under golang-migrate's dirty protocol
// (apply_outside_transaction), and --single-transaction's batch (apply_batch). Connecting, the
// state and the history are postgres_driver.cpp.

#include <fmt/format.h>

#include <chrono>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/error.hpp"
#include "drivers/postgres/history_reader.hpp"
#include "drivers/postgres/postgres_driver_impl.hpp"

namespace dbstep::drivers::pg {

namespace {

using Clock = std::chrono::steady_clock;

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

}  // namespace

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
  // The version or history table went missing since this session made sure of it (another
  // process ran drop): the step runs once more, making sure of them anew.
  auto again_making_sure = [&] {
    forget_tables();
    return apply_in_transaction(step, script, expected, /*retried=*/true);
  };
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
      auto [r, failed] = conn_.try_exec(history_->next_id());
      if (failed) {
        rollback_quietly();
        if (ready && !retried && pg::is_missing_table(failed->sqlstate)) {
          return again_making_sure();
        }
        conn_.fail(fmt::format("reading the history from {}", history_->name()), *failed);
      }
      next_history_id_ = r[0][0].as<std::int64_t>();
    }
    // The bookkeeping statements prepared on the session (prepared_bookkeeping.hpp), never in
    // the session's first write (the tables may not exist before it commits), nor when the step
    // runs again after they went missing.
    const bool may_prepare = pg::PreparedBookkeeping::may_use_for(step.sql);
    if (!may_prepare) prepared_.forget();  // the file may remove them
    const bool use_prepared = ready && may_prepare && !retried && lock_->session_is_ours() &&
                              prepare_bookkeeping(with_history);
    Pipeline p(conn_, Pipeline::mode_for(step, script));
    std::size_t first = 0;  // the index of the file's first statement
    if (ready) {
      p.add("BEGIN");
      if (!local_timeout_.empty()) p.add(local_timeout_);
      if (auto check = lock_->session_check_sql(); !check.empty()) p.add(check);
      first = p.size();
    }
    p.add_statements(step, script);
    const std::size_t bookkeeping = p.size();
    // The row's applied_at is the server's now(), the transaction's start; its duration runs
    // to the append, after the file's last statement.
    if (with_history) {
      p.add(use_prepared ? history_->execute_insert(prepared_.history_insert(), *step.history,
                                                    *next_history_id_)
                         : history_->insert(*step.history, std::nullopt, next_history_id_));
    }
    const std::size_t version_write = p.size();
    p.add(use_prepared
              ? version_->execute_check_and_write(prepared_.version_write(), expected, done)
              : version_->check_and_write(expected, done));
    const std::size_t commit = p.size();
    p.add("COMMIT");
    auto failed = p.finish();
    if (failed) {
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
      if (ready && !retried && i >= bookkeeping && i < commit && pg::is_missing_table(f.sqlstate) &&
          bookkeeping_tables_missing(with_history)) {
        // (When the tables are there after the rollback, the migration itself removed one:
        // its failure is reported below, and it does not run twice.)
        return again_making_sure();
      }
      if (use_prepared && i >= bookkeeping && i < commit && f.sqlstate == "26000") {
        // A prepared statement went missing (DEALLOCATE in a function the file called): the
        // transaction rolled back; again, with the bookkeeping as text.
        prepared_.forget();
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

bool PostgresDriver::prepare_bookkeeping(bool with_history) {
  std::string sql;
  // The version write is prepared in its MERGE form only (PostgreSQL 15 and later, a role that
  // may UPDATE the table): its other forms are sent as text.
  if (version_->uses_merge() && !prepared_.version_write_prepared()) {
    sql += version_->prepare_check_and_write(prepared_.version_write()) + ";\n";
  }
  if (with_history && !prepared_.history_insert_prepared()) {
    sql += history_->prepare_insert(prepared_.history_insert()) + ";\n";
  }
  if (sql.empty()) return true;
  if (auto [r, failed] = conn_.try_exec(sql); failed) {
    // The step then sends the statements as text, and their failure, if any, says what is
    // wrong (a history table of another shape ...). New names next time: one may exist.
    conn_.rollback_quietly();
    prepared_.forget();
    return false;
  }
  if (version_->uses_merge()) prepared_.set_version_write_prepared();
  if (with_history) prepared_.set_history_insert_prepared();
  return true;
}

bool PostgresDriver::apply_batch(const DbState& expected, const StepFeed& next) {
  next_history_id_.reset();  // its rows take max + 1
  prepared_.forget();        // its files may remove them
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
  if (!local_timeout_.empty()) {
    // Each statement would be a transaction of its own, on whichever server session is free: a
    // session SET would stay there for the pool's other clients, a SET LOCAL bounds nothing.
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("{} runs outside a transaction ({}), where x-statement-timeout cannot "
                            "bound its statements behind a connection pooler in transaction mode "
                            "without setting it for the pool's other clients; nothing of it was "
                            "run. Run it with a URL without x-statement-timeout, or connect to "
                            "PostgreSQL directly (or, if the pooler keeps one server session per "
                            "client, add x-pooler=session)",
                            step.file, script.why_outside));
  }
  next_history_id_.reset();  // its rows take max + 1
  prepared_.forget();        // DISCARD ALL runs only outside a transaction
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

}  // namespace dbstep::drivers::pg
