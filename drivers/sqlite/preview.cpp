#include "drivers/sqlite/preview.hpp"

#include <fmt/format.h>

#include <optional>
#include <string_view>

#include "core/error.hpp"
#include "core/sql_text.hpp"
#include "core/statement_accounting.hpp"
#include "drivers/sqlite/driver_sql.hpp"
#include "drivers/sqlite/statements.hpp"

namespace dbstep::drivers::sqlite {

namespace {

// The schema objects of `database` as CREATE statements: virtual tables first (they make their
// own shadow tables), then in the order they were made. SQLite's internal objects are left out.
std::vector<std::string> schema_of(sqlite3* database) {
  std::vector<std::string> out;
  sqlite3_stmt* raw = nullptr;
  const char* sql =
      "SELECT sql FROM main.sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%' "
      "ORDER BY CASE WHEN sql LIKE 'CREATE VIRTUAL%' THEN 0 ELSE 1 END, rowid";
  if (sqlite3_prepare_v2(database, sql, -1, &raw, nullptr) != SQLITE_OK) {
    Error e(ErrorCode::kDatabase, fmt::format("cannot read the schema for a dry run: {}",
                                              sqlite3_errmsg(database)));
    e.sqlstate = std::to_string(sqlite3_extended_errcode(database));
    throw e;
  }
  StatementPtr stmt(raw);
  int rc;
  while ((rc = sqlite3_step(raw)) == SQLITE_ROW) {
    out.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(raw, 0)));
  }
  if (rc != SQLITE_DONE) {
    throw Error(ErrorCode::kDatabase, fmt::format("cannot read the schema for a dry run: {}",
                                                  sqlite3_errmsg(database)));
  }
  return out;
}

// The statement's text without the blank text before and after it.
StatementPreview statement_preview(const std::string& text, const TextSpan& span) {
  const std::size_t start = skip_blank(text, span.offset, SqlDialect::kSqlite);
  std::size_t end = span.end();
  while (end > start && std::isspace(static_cast<unsigned char>(text[end - 1]))) --end;
  const TextPosition pos = position_at(text, start);
  return StatementPreview{pos.line, pos.column, text.substr(start, end - start)};
}

}  // namespace

PreviewRun::PreviewRun(sqlite3* database, const std::vector<std::string>& pragmas,
                       bool no_tx_wrap)
    : no_tx_wrap_(no_tx_wrap) {
  sqlite3* raw = nullptr;
  const int rc = sqlite3_open_v2(":memory:", &raw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_MEMORY,
                                 nullptr);
  scratch_.reset(raw);
  if (rc != SQLITE_OK) {
    throw Error(ErrorCode::kDatabase, "cannot open an in-memory database for the dry run");
  }
  for (const auto& p : pragmas) {
    if (ascii_lower(p).find("foreign_keys") != std::string::npos) {
      sqlite3_exec(scratch_.get(), p.c_str(), nullptr, nullptr, nullptr);
    }
  }
  if (!database) return;
  // Objects may depend on ones made after them (a view over a table rebuilt later): what fails
  // is tried again while each pass makes progress.
  std::vector<std::string> todo = schema_of(database);
  while (!todo.empty()) {
    std::vector<std::string> failed;
    for (const auto& sql : todo) {
      if (sqlite3_exec(scratch_.get(), sql.c_str(), nullptr, nullptr, nullptr) != SQLITE_OK) {
        failed.push_back(sql);
      }
    }
    if (failed.size() == todo.size()) break;  // what is left cannot be copied; previews go on
    todo = std::move(failed);
  }
}

StepPreview PreviewRun::preview(const Step& step) {
  StepPreview out;
  const std::string& text = step.sql;
  if (no_tx_wrap_) {
    out.in_transaction = false;
    out.why_outside = "x-no-tx-wrap is set";
  } else if (has_directive(text, "dbstep:no-transaction")) {
    out.in_transaction = false;
    out.why_outside = "it says -- dbstep:no-transaction";
  }
  // The walk as apply() makes it, statement by statement, each run on the scratch copy so that
  // the next one can be prepared. Which statements are sent depends on the whole file (a VACUUM
  // at the end sends the file's own BEGIN too), so the roles are settled after the walk.
  struct Walked {
    TextSpan span;
    TxRole role;
  };
  std::vector<Walked> walked;
  StatementWalk walk(scratch_.get(), step);
  bool ran_any = false;
  bool wrapper_open = false;
  TextSpan wrapper_begin;
  bool keys_pragma = false;
  const bool keys_on = foreign_keys_on(scratch_.get());
  while (auto prepared = walk.next()) {
    const TextSpan span = prepared->span;
    const std::string_view statement = std::string_view(text).substr(span.offset, span.length);
    const TxRole role = transaction_role(statement, ran_any, wrapper_open, walk.is_last(span));
    walked.push_back({span, role});
    if (role == TxRole::kWrapperBegin) {
      wrapper_open = true;
      wrapper_begin = span;
    } else if (role == TxRole::kWrapperCommit) {
      wrapper_open = false;
    } else {
      ran_any = true;
    }
    if (role == TxRole::kNeedsNoTransaction && out.in_transaction) {
      const TextPosition pos = position_at(text, skip_blank(text, span.offset, SqlDialect::kSqlite));
      out.in_transaction = false;
      out.why_outside = fmt::format(
          "it holds {} (line {}), which SQLite cannot run inside dbstep's transaction",
          first_keyword(statement), pos.line);
    }
    if (role == TxRole::kForeignKeysPragma) keys_pragma = true;
    // Run it on the scratch copy, except what would reach outside it.
    const std::string keyword = first_keyword(statement);
    const bool reaches_out =
        keyword == "ATTACH" || keyword == "DETACH" ||
        (keyword == "VACUUM" && ascii_lower(statement).find("into") != std::string::npos);
    if (reaches_out || role == TxRole::kWrapperBegin || role == TxRole::kWrapperCommit) continue;
    sqlite3_stmt* stmt = prepared->stmt.get();
    int rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    }
    if (rc != SQLITE_DONE) {
      out.notes.push_back(fmt::format(
          "the statement at line {} failed on dbstep's empty copy of the schema ({}); the "
          "database's rows may differ",
          statement_preview(text, span).line, sqlite3_errmsg(scratch_.get())));
    }
  }
  // A transaction the file left open on the scratch copy would hold the next step's statements.
  if (!sqlite3_get_autocommit(scratch_.get())) {
    sqlite3_exec(scratch_.get(), "ROLLBACK", nullptr, nullptr, nullptr);
  }
  if (out.in_transaction && wrapper_open) {
    throw begin_without_commit_error(step, wrapper_begin.offset, SqlDialect::kSqlite);
  }
  bool absorbed = false;
  for (const auto& w : walked) {
    const bool wrapper = w.role == TxRole::kWrapperBegin || w.role == TxRole::kWrapperCommit;
    if (out.in_transaction && wrapper) {
      absorbed = true;
      continue;
    }
    out.statements.push_back(statement_preview(text, w.span));
  }
  if (absorbed) {
    out.notes.emplace_back("the file's own BEGIN and COMMIT are not sent: dbstep's transaction "
                           "stands in for them");
  }
  if (out.in_transaction && keys_pragma && keys_on) {
    out.notes.emplace_back("it sets PRAGMA foreign_keys, which SQLite ignores inside a "
                           "transaction: foreign keys are switched off around the transaction "
                           "and checked before COMMIT");
  }
  return out;
}

}  // namespace dbstep::drivers::sqlite
