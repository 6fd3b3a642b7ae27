#include "drivers/sqlite/statements.hpp"

#include <fmt/format.h>

#include <cctype>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"
#include "core/sql_text.hpp"

namespace dbstep::drivers::sqlite {

namespace {

bool controls_transactions(std::string_view keyword) {
  return keyword == "BEGIN" || keyword == "COMMIT" || keyword == "END" ||
         keyword == "ROLLBACK" || keyword == "VACUUM";
}

// The upper-cased words of a statement, after leading comments: {"PRAGMA", "FOREIGN_KEYS"}.
std::vector<std::string> leading_words(std::string_view statement, std::size_t count) {
  std::vector<std::string> words;
  std::size_t i = skip_space_and_comments(statement, bom_length(statement));
  while (words.size() < count && i < statement.size()) {
    std::string w;
    while (i < statement.size() &&
           (std::isalnum(static_cast<unsigned char>(statement[i])) || statement[i] == '_')) {
      w.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(statement[i]))));
      ++i;
    }
    if (w.empty()) break;
    words.push_back(std::move(w));
    i = skip_space_and_comments(statement, i);
  }
  return words;
}

}  // namespace

TxRole transaction_role(std::string_view statement, bool ran_any, bool wrapper_open, bool last) {
  const auto words = leading_words(statement, 3);
  const std::string first = words.empty() ? "" : words[0];
  const std::string second = words.size() > 1 ? words[1] : "";
  if (first == "BEGIN" && !ran_any && !wrapper_open &&
      (words.size() == 1 || second == "TRANSACTION" || second == "DEFERRED" ||
       second == "IMMEDIATE" || second == "EXCLUSIVE")) {
    return TxRole::kWrapperBegin;  // one plain wrapper: our transaction stands in for it
  }
  if ((first == "COMMIT" || first == "END") && wrapper_open && last) return TxRole::kWrapperCommit;
  if (first == "ROLLBACK" &&
      (second == "TO" || (second == "TRANSACTION" && words.size() > 2 && words[2] == "TO"))) {
    return TxRole::kRun;  // ROLLBACK TO a savepoint works inside a transaction
  }
  if (controls_transactions(first)) return TxRole::kNeedsNoTransaction;
  if (first == "PRAGMA" && second == "FOREIGN_KEYS" &&
      statement.find('=') != std::string_view::npos) {
    return TxRole::kForeignKeysPragma;
  }
  return TxRole::kRun;
}

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
    if (span.end() == text.size()) {
      // The last statement: SQLite also ends a statement at an unterminated comment, which then
      // swallows the rest of the file. Complete means it would end at a `;` on a line of its own.
      const std::string closed = text.substr(span.offset, span.length) + "\n;";
      if (!sqlite3_complete(closed.c_str())) {
        throw unaccounted_text_error(step_, unterminated_comment_at(span));
      }
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

std::size_t StatementWalk::unterminated_comment_at(const TextSpan& span) const {
  // The "/*" that never closes: scan as SQLite's tokenizer does, skipping strings and quoted
  // names, which may hold "/*".
  const std::string_view s = std::string_view(step_.sql).substr(span.offset, span.length);
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '\'' || c == '"' || c == '`' || c == '[') {
      const char close = c == '[' ? ']' : c;
      const std::size_t end = s.find(close, i + 1);
      if (end == std::string_view::npos) break;
      i = end;
    } else if (s.compare(i, 2, "--") == 0) {
      const std::size_t nl = s.find('\n', i);
      if (nl == std::string_view::npos) break;
      i = nl;
    } else if (s.compare(i, 2, "/*") == 0) {
      const std::size_t end = s.find("*/", i + 2);
      if (end == std::string_view::npos) return span.offset + i;
      i = end + 1;
    }
  }
  return span.offset;
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
  // A statement SQLite could not prepare ends where SQLite stopped reading: show it through the
  // end of its line, as a person would look for it.
  std::size_t shown = statement.size();
  if (offset >= span.offset) {
    const std::size_t eol = text.find('\n', offset);
    if (eol != std::string::npos && eol > span.end()) shown = eol - span.offset;
  }
  e.statement = statement_excerpt(std::string_view(text).substr(span.offset, shown), 2000);
  return e;
}

}  // namespace dbstep::drivers::sqlite
