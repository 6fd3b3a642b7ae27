// The SQLite driver running migrations (sqlite_driver_impl.hpp): one step in a BEGIN IMMEDIATE
// transaction of ours that checks the stored state first (apply_step), again with foreign keys
// off around it when the file sets PRAGMA foreign_keys, or, when the file cannot run in a
// transaction, under golang-migrate's dirty protocol: {target, dirty}, the file as written,
// {target, clean}; and --single-transaction's batch (apply_steps). Connecting, the state, the
// lock and the history are sqlite_driver.cpp.

#include <sqlite3.h>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/driver.hpp"
#include "core/error.hpp"
#include "core/sql_text.hpp"
#include "core/statement_accounting.hpp"
#include "drivers/sqlite/driver_sql.hpp"
#include "drivers/sqlite/sqlite_driver_impl.hpp"
#include "drivers/sqlite/statements.hpp"

namespace dbstep::drivers::sqlite {

namespace {

// Thrown inside a wrapped run when the file turns out to control transactions itself (BEGIN,
// COMMIT ... other than one plain wrapper) or to hold a statement SQLite refuses in a transaction
// (VACUUM). The wrapper rolls back (nothing of the file has happened) and the file runs again
// without it.
struct NeedsNoTransaction {};

// Thrown inside a wrapped run, foreign keys on, at a `PRAGMA foreign_keys = ...`: SQLite ignores
// it inside a transaction, so the table-rebuild recipe (keys off, DROP and rename the parent,
// keys on) would cascade-delete child rows. The wrapper rolls back and the file runs again in
// one transaction with the keys switched off around it and checked before COMMIT.
struct NeedsForeignKeysOff {};

}  // namespace

void SqliteDriver::run_file(const Step& step, Wrap wrap) {
  sqlite::StatementWalk walk(handle(), step);
  bool ran_any = false;
  bool wrapper_open = false;  // the file's own plain BEGIN was skipped; its COMMIT must end it
  TextSpan wrapper_begin;
  file_committed_ = false;
  while (auto prepared = walk.next()) {
    const TextSpan span = prepared->span;
    sqlite3_stmt* stmt = prepared->stmt.get();
    if (wrap != Wrap::kNone) {
      const std::string_view statement = std::string_view(step.sql).substr(span.offset, span.length);
      switch (sqlite::transaction_role(statement, ran_any, wrapper_open, walk.is_last(span))) {
        case sqlite::TxRole::kWrapperBegin:
          wrapper_open = true;
          wrapper_begin = span;
          continue;
        case sqlite::TxRole::kWrapperCommit:
          wrapper_open = false;
          continue;
        case sqlite::TxRole::kNeedsNoTransaction:
          throw NeedsNoTransaction{};
        case sqlite::TxRole::kForeignKeysPragma:
          if (wrap == Wrap::kTransaction && sqlite::foreign_keys_on(handle())) {
            throw NeedsForeignKeysOff{};
          }
          break;
        case sqlite::TxRole::kRun:
          break;
      }
    }
    ran_any = true;
    int rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    }
    if (rc != SQLITE_DONE) throw walk.statement_error(span);
    // Outside our transaction, a statement that ends with no transaction open has been
    // committed (its own, or the file's COMMIT): from then on the file has left a mark.
    if (wrap == Wrap::kNone && sqlite3_get_autocommit(handle())) file_committed_ = true;
  }
  if (wrapper_open) {
    // The file's BEGIN (skipped: our transaction stood in for it) never ended. Committing for
    // the file would be a guess; everything it did is in our transaction, which the caller
    // rolls back, so nothing of it remains and the version stays where it was, clean.
    throw begin_without_commit_error(step, wrapper_begin.offset, SqlDialect::kSqlite);
  }
}

void SqliteDriver::restore_state_quietly(const DbState& state) noexcept {
  try {
    begin_immediate();
    version_.write(handle(), state);
    exec("COMMIT", "cannot take back the dirty mark");
  } catch (...) {
    rollback_quietly();
  }
}

void SqliteDriver::check_foreign_keys(const Step& step) {
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(handle(), "PRAGMA foreign_key_check", -1, &stmt, nullptr) != SQLITE_OK) {
    throw sqlite::database_error(handle(), "cannot check foreign keys", description_);
  }
  std::vector<std::string> problems;
  while (sqlite3_step(stmt) == SQLITE_ROW && problems.size() < 5) {
    auto text = [&](int i) {
      auto t = sqlite3_column_text(stmt, i);
      return std::string(t ? reinterpret_cast<const char*>(t) : "?");
    };
    problems.push_back(fmt::format("{} row {} references missing {}", text(0), text(1), text(2)));
  }
  sqlite3_finalize(stmt);
  if (problems.empty()) return;
  Error e(ErrorCode::kMigrationFailed,
          fmt::format("migration {} ({}) ran with foreign keys off (it sets PRAGMA foreign_keys) "
                      "and leaves rows that break them: {}",
                      step.version, step.file, fmt::join(problems, "; ")));
  e.file = step.file;
  e.version = step.version;
  throw e;
}

void SqliteDriver::append_history(const Step& step, std::chrono::steady_clock::time_point started,
                                  std::optional<HistoryKind> kind) {
  if (!step.history) return;
  if (!history_ready_) {
    history_.ensure(handle());
    history_ready_ = true;
  }
  if (!kind) {
    history_.append(handle(), *step.history, started);
    return;
  }
  HistoryRow row = *step.history;
  row.kind = *kind;
  history_.append(handle(), row, started);
}

bool SqliteDriver::apply_step(const Step& step, const DbState& expected) {
  open_connection(true);
  const auto started = std::chrono::steady_clock::now();
  const DbState done{step.target, false};
  Wrap wrap = no_tx_wrap_ || has_directive(step.sql, "dbstep:no-transaction") ? Wrap::kNone
                                                                               : Wrap::kTransaction;
  while (wrap != Wrap::kNone || !step.has_file()) {
    // Foreign keys can only be switched outside a transaction; they come back on below.
    const bool keys_off = wrap == Wrap::kForeignKeysOff;
    if (keys_off) exec("PRAGMA foreign_keys = OFF", "cannot switch foreign keys off");
    struct KeysBackOn {
      SqliteDriver* d;
      bool on;
      ~KeysBackOn() {
        if (on) sqlite3_exec(d->handle(), "PRAGMA foreign_keys = ON", nullptr, nullptr, nullptr);
      }
    } keys_back_on{this, keys_off};
    if (!begin_checked(expected)) return false;
    try {
      if (step.has_file()) run_file(step, wrap);
      if (keys_off) check_foreign_keys(step);
      append_history(step, started);
      version_.write(handle(), done);
      exec("COMMIT", "cannot commit migration " + std::to_string(step.version));
      return true;
    } catch (const NeedsNoTransaction&) {
      rollback_quietly();
      forget_tables();  // the rollback may have undone their creation
      wrap = Wrap::kNone;
    } catch (const NeedsForeignKeysOff&) {
      rollback_quietly();
      forget_tables();
      wrap = Wrap::kForeignKeysOff;
    } catch (...) {
      rollback_quietly();
      forget_tables();
      throw;
    }
  }

  // golang-migrate's dirty protocol: {target, dirty}, the file as written, {target, clean}.
  if (!begin_checked(expected)) return false;
  try {
    version_.write(handle(), DbState{step.target, true});
    exec("COMMIT", "cannot mark the database dirty");
  } catch (...) {
    rollback_quietly();
    version_.forget();
    throw;
  }
  try {
    run_file(step, Wrap::kNone);
    if (!sqlite3_get_autocommit(handle())) {
      // The file began a transaction and never ended it: committing it for the file would be a
      // guess, so it is rolled back.
      Error e(ErrorCode::kMigrationFailed,
              fmt::format("migration {} ({}) began a transaction and did not commit it; its open "
                          "transaction was rolled back. Add COMMIT at the end of the file",
                          step.version, step.file));
      e.file = step.file;
      e.version = step.version;
      throw e;
    }
  } catch (...) {
    rollback_quietly();  // a transaction the file opened and did not finish
    // When no statement of the file was committed, the rollback took everything back: the
    // database is as it was, so the dirty mark is taken back too. Otherwise it stays dirty for
    // a person to look at, and the history says the step failed part way.
    if (!file_committed_) {
      restore_state_quietly(expected);
    } else if (step.history) {
      try {
        begin_immediate();
        append_history(step, started, HistoryKind::kFailed);
        exec("COMMIT", "cannot record the failure in the history");
      } catch (...) {
        rollback_quietly();  // the migration's error matters more
        history_ready_ = false;
      }
    }
    throw;
  }
  begin_immediate();
  try {
    append_history(step, started);
    version_.write(handle(), done);
    exec("COMMIT", "cannot mark the database clean");
  } catch (...) {
    rollback_quietly();
    history_ready_ = false;
    throw;
  }
  return true;
}

bool SqliteDriver::apply_steps(const DbState& expected, const StepFeed& next) {
  open_connection(true);
  if (!begin_checked(expected)) return false;
  try {
    std::optional<DbState> last;
    while (const Step* step = next()) {
      const auto started = std::chrono::steady_clock::now();
      if (step->has_file()) {
        if (no_tx_wrap_) throw cannot_batch(*step, "x-no-tx-wrap is set");
        if (has_directive(step->sql, "dbstep:no-transaction")) {
          throw cannot_batch(*step, "it says -- dbstep:no-transaction");
        }
        try {
          run_file(*step, Wrap::kTransaction);
        } catch (const NeedsNoTransaction&) {
          throw cannot_batch(*step, "it holds BEGIN, COMMIT, ROLLBACK or VACUUM");
        } catch (const NeedsForeignKeysOff&) {
          throw cannot_batch(*step, "it switches foreign keys off, which SQLite only allows "
                                    "outside a transaction");
        }
      }
      append_history(*step, started);
      last = DbState{step->target, false};
    }
    if (last) version_.write(handle(), *last);
    exec("COMMIT", "cannot commit the migrations");
    return true;
  } catch (...) {
    rollback_quietly();
    forget_tables();
    throw;
  }
}

}  // namespace dbstep::drivers::sqlite
