#include "core/statement_accounting.hpp"

#include <fmt/format.h>

#include "core/sql_text.hpp"

namespace dbstep {

namespace {

bool is_space(char c, SqlDialect dialect) {
  switch (c) {
    case ' ':
    case '\t':
    case '\n':
    case '\r':
    case '\f':
      return true;
    case '\v':
      // SQLite's tokenizer counts 0x09..0x0d as space; PostgreSQL 15's scanner does not know
      // "\v" (its `space` class is [ \t\n\r\f]).
      return dialect == SqlDialect::kSqlite;
    default:
      return false;
  }
}

// The end of the comment starting at `i` ("--" or "/*"), or nullopt when there is no comment
// there or (PostgreSQL) it never ends.
std::optional<std::size_t> comment_end(std::string_view text, std::size_t i, SqlDialect dialect) {
  if (text.compare(i, 2, "--") == 0) {
    std::size_t j = i + 2;
    while (j < text.size() && text[j] != '\n' &&
           !(dialect == SqlDialect::kPostgres && text[j] == '\r')) {
      ++j;
    }
    return j;
  }
  if (text.compare(i, 2, "/*") != 0) return std::nullopt;
  if (dialect == SqlDialect::kSqlite) {
    // SQLite's tokenizer lets an unterminated comment run to the end of the text, silently
    // swallowing whatever follows; its own shell refuses that as incomplete input, and so does
    // dbstep: an unterminated comment is not blank.
    std::size_t close = text.find("*/", i + 2);
    if (close == std::string_view::npos) return std::nullopt;
    return close + 2;
  }
  // PostgreSQL nests block comments and refuses an unterminated one.
  std::size_t depth = 1;
  std::size_t j = i + 2;
  while (j < text.size()) {
    if (text.compare(j, 2, "/*") == 0) {
      ++depth;
      j += 2;
    } else if (text.compare(j, 2, "*/") == 0) {
      j += 2;
      if (--depth == 0) return j;
    } else {
      ++j;
    }
  }
  return std::nullopt;
}

}  // namespace

std::size_t skip_blank(std::string_view text, std::size_t i, SqlDialect dialect) {
  while (i < text.size()) {
    if (is_space(text[i], dialect)) {
      ++i;
    } else if (auto end = comment_end(text, i, dialect)) {
      i = *end;
    } else {
      break;
    }
  }
  return i;
}

std::size_t skip_separators(std::string_view text, std::size_t i, SqlDialect dialect) {
  for (i = skip_blank(text, i, dialect); i < text.size() && text[i] == ';';) {
    i = skip_blank(text, i + 1, dialect);
  }
  return i;
}

namespace {

// The first byte of text[from, to) that is not blank or `;`, or nullopt. A byte-order mark is
// blank only where `bom_allowed` says it is the file's first bytes.
std::optional<std::size_t> first_unblank(std::string_view text, std::size_t from, std::size_t to,
                                         SqlDialect dialect, bool bom_allowed) {
  std::string_view part = text.substr(0, to);
  const std::size_t start = from == 0 && bom_allowed ? bom_length(part) : from;
  const std::size_t i = skip_separators(part, start, dialect);
  if (i < to) return i;
  return std::nullopt;
}

}  // namespace

bool is_blank(std::string_view part, SqlDialect dialect) {
  // A part of a file: a byte-order mark in it is not at the file's start, so it is text.
  return !first_unblank(part, 0, part.size(), dialect, false).has_value();
}

std::optional<std::size_t> first_unaccounted(std::string_view text,
                                             std::span<const TextSpan> statements,
                                             SqlDialect dialect) {
  std::size_t covered = 0;  // everything before this offset is accounted for
  for (const TextSpan& s : statements) {
    if (s.offset < covered || s.end() > text.size() || s.end() < s.offset) return s.offset;
    if (auto at = first_unblank(text, covered, s.offset, dialect, true)) return at;
    covered = s.end();
  }
  return first_unblank(text, covered, text.size(), dialect, true);
}

Error unaccounted_text_error(const Step& step, std::size_t offset) {
  const TextPosition pos = position_at(step.sql, offset);
  std::string_view rest = std::string_view(step.sql).substr(std::min(offset, step.sql.size()));
  Error e(ErrorCode::kMigrationFailed,
          fmt::format("migration {} ({}) has text at line {}, column {} that is not part of any "
                      "statement dbstep could send: {}",
                      step.version, step.file, pos.line, pos.column, statement_excerpt(rest, 60)));
  e.file = step.file;
  e.version = step.version;
  e.line = pos.line;
  e.column = pos.column;
  e.statement = statement_excerpt(rest, 2000);
  return e;
}

Error nul_byte_error(const Step& step, std::size_t offset) {
  const TextPosition pos = position_at(step.sql, offset);
  Error e(ErrorCode::kMigrationFailed,
          fmt::format("migration {} ({}) contains a NUL byte at line {}, column {}: it is not SQL "
                      "text (a binary file, or text saved as UTF-16?)",
                      step.version, step.file, pos.line, pos.column));
  e.file = step.file;
  e.version = step.version;
  e.line = pos.line;
  e.column = pos.column;
  return e;
}

Error begin_without_commit_error(const Step& step, std::size_t begin_offset, SqlDialect dialect) {
  const TextPosition pos = position_at(step.sql, skip_blank(step.sql, begin_offset, dialect));
  Error e(ErrorCode::kMigrationFailed,
          fmt::format("migration {} ({}) begins a transaction at line {} and never commits it; "
                      "nothing of it was kept. Add COMMIT at the end of the file",
                      step.version, step.file, pos.line));
  e.file = step.file;
  e.version = step.version;
  e.line = pos.line;
  e.column = pos.column;
  return e;
}

}  // namespace dbstep
