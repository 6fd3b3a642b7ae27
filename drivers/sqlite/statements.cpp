#include "drivers/sqlite/statements.hpp"

#include <fmt/format.h>

#include <string>

#include "core/error.hpp"
#include "core/sql_text.hpp"

namespace dbstep::drivers::sqlite {

StatementWalk::StatementWalk(sqlite3* db, const Step& step)
    : db_(db), step_(step), at_(bom_length(step.sql)) {
  if (auto nul = step.sql.find('\0'); nul != std::string::npos) {
    throw nul_byte_error(step, nul);
  }
}

std::optional<Prepared> StatementWalk::next() {
  const std::string& text = step_.sql;
  while (at_ < text.size()) {
    const char* start = text.data() + at_;
    const char* tail = nullptr;
    sqlite3_stmt* raw = nullptr;
    // The length includes the string's own NUL terminator: SQLite then reads the text in place.
    // Without it, SQLite copies everything from `start` to the end to terminate it, once per
    // statement, which made a large file quadratic.
    const int rc = sqlite3_prepare_v2(db_, start, static_cast<int>(text.size() - at_ + 1), &raw,
                                      &tail);
    StatementPtr stmt(raw);
    const std::size_t end =
        tail ? static_cast<std::size_t>(tail - text.data()) : text.size();
    const TextSpan span{at_, (end > at_ ? end : text.size()) - at_};
    if (rc != SQLITE_OK) throw statement_error(span);
    if (!stmt) {
      // SQLite found no statement: only whitespace, comments and `;` were there.
      if (end <= at_) break;  // no progress: the check below decides
      at_ = end;
      continue;
    }
    spans_.push_back(span);
    at_ = span.end();
    return Prepared{std::move(stmt), span};
  }
  // Everything SQLite passed over must be blank to us too, and nothing may remain.
  if (auto at = first_unaccounted(text, spans_, SqlDialect::kSqlite)) {
    throw unaccounted_text_error(step_, *at);
  }
  return std::nullopt;
}

bool StatementWalk::is_last(const TextSpan& span) const {
  return skip_separators(step_.sql, span.end(), SqlDialect::kSqlite) == step_.sql.size();
}

Error StatementWalk::statement_error(const TextSpan& span) const {
  const std::string& text = step_.sql;
  const std::string_view statement = std::string_view(text).substr(span.offset, span.length);
  // The failing token when SQLite knows it (syntax errors), else the statement's start.
  const int token = sqlite3_error_offset(db_);
  const std::size_t offset = token >= 0 && static_cast<std::size_t>(token) < span.length
                                 ? span.offset + static_cast<std::size_t>(token)
                                 : skip_blank(text, span.offset, SqlDialect::kSqlite);
  const TextPosition pos = position_at(text, offset);
  Error e(ErrorCode::kMigrationFailed,
          fmt::format("migration {} ({}) failed at line {}, column {}: {}", step_.version,
                      step_.file, pos.line, pos.column, sqlite3_errmsg(db_)));
  e.file = step_.file;
  e.version = step_.version;
  e.line = pos.line;
  e.column = pos.column;
  e.sqlstate = std::to_string(sqlite3_extended_errcode(db_));
  e.detail = sqlite3_errmsg(db_);
  e.statement = statement_excerpt(statement, 2000);
  return e;
}

}  // namespace dbstep::drivers::sqlite
