#pragma once
// Internal to drivers/postgres: the PostgreSQL driver's class, shared by the files that define
// its members: postgres_driver.cpp (connecting, the state, the history, drop) and apply.cpp
// (running migrations: one step in or outside a transaction, a --single-transaction batch). The
// library's interface is postgres_driver.hpp, which shows none of this.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/driver.hpp"
#include "core/url.hpp"
#include "drivers/postgres/connection.hpp"
#include "drivers/postgres/history_table.hpp"
#include "drivers/postgres/lock.hpp"
#include "drivers/postgres/options.hpp"
#include "drivers/postgres/pipeline.hpp"
#include "drivers/postgres/pooler_check.hpp"
#include "drivers/postgres/prepared_bookkeeping.hpp"
#include "drivers/postgres/schema_snapshot.hpp"
#include "drivers/postgres/statements.hpp"
#include "drivers/postgres/version_table.hpp"

namespace dbstep::drivers::pg {

class PostgresDriver final : public Driver {
 public:
  // Connects and reads the session's schema. Without `wait`, only starts connecting
  // (Connection(url, false)): finish_opening() must come before anything else.
  PostgresDriver(const Url& url, pg::Options options, bool wait = true);
  void finish_opening();
  ~PostgresDriver() override;
  PostgresDriver(const PostgresDriver&) = delete;
  PostgresDriver& operator=(const PostgresDriver&) = delete;

  using Driver::lock;
  void lock(std::chrono::milliseconds timeout, const std::atomic<bool>* stop) override {
    lock_->lock(timeout, stop);
  }
  void unlock() override { lock_->unlock(); }
  DbState state() override;
  StateAndMarks state_and_marks() override;
  bool apply(const Step& step, const DbState& expected) override;
  bool apply_batch(const DbState& expected, const StepFeed& next) override;
  void set_state(const DbState& state) override;
  std::optional<std::vector<HistoryRow>> history() override;
  std::optional<std::vector<HistoryMark>> history_marks() override;
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
  // "BEGIN", and behind a transaction pooler with x-statement-timeout its SET LOCAL: what opens
  // every transaction the driver starts with one round trip of its own.
  std::string begin_sql() const {
    return local_timeout_.empty() ? std::string("BEGIN") : "BEGIN; " + local_timeout_;
  }
  // Forgets that the version and history tables exist, and what was prepared on them: the next
  // write makes sure of them as a new session would (another process ran drop).
  void forget_tables() {
    table_ready_ = history_ready_ = false;
    next_history_id_.reset();
    prepared_.forget();
  }
  // After a failure that named a missing table, rolled back: whether the version table (or,
  // `with_history`, the history table) is really gone, rather than removed by the migration
  // itself in the transaction that rolled back. False when it cannot be told.
  bool bookkeeping_tables_missing(bool with_history) noexcept;
  // The state in a read of version_->select(): a missing table is {none, clean}.
  DbState state_of(const Connection::QueryResult& read);
  // After a migration failed and rolled back: whether the stored state is no longer `expected`
  // (another process moved it, which explains the failure). False when it cannot be read.
  bool state_moved(const DbState& expected) noexcept;

  // Prepares the bookkeeping statements not yet prepared on the session (prepared_), the history
  // INSERT only `with_history`, in a round trip of its own outside any transaction. False when
  // the server refused: the step then sends them as text.
  bool prepare_bookkeeping(bool with_history);
  // `retried`: this is the step's second try, after its history id was taken by a writer that
  // left the version as it was (see next_history_id_), or a prepared statement went missing.
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
  // "SET LOCAL statement_timeout = N", sent first in each transaction the driver opens, when
  // x-statement-timeout cannot be a setting of the session (behind a pooler in transaction mode);
  // else empty.
  std::string local_timeout_;
  // The id of the history row apply_in_transaction() appends next, once read (max + 1) and then
  // counted: the INSERT then carries it as a literal rather than reading max(id) itself, which
  // costs the server about as much as the rest of the INSERT. Writers of the history hold the
  // migration lock, so nobody else takes an id meanwhile; should one have (the lock not taken),
  // the primary key refuses the row, the step rolls back, and it runs again once with the id
  // read anew. Forgotten after any other write of the history and after any failure.
  std::optional<std::int64_t> next_history_id_;
  // The history INSERT and the version write, prepared on this session (prepared_bookkeeping.hpp).
  pg::PreparedBookkeeping prepared_;
};

}  // namespace dbstep::drivers::pg
