#pragma once
// Statement accounting: the rule that keeps a migration from being recorded as applied while
// part of its SQL never ran. A driver splits a file into the statements it executes; whatever
// lies between them is skipped. The rule: the statements and the skipped parts cover the file
// exactly, and every skipped part is blank (whitespace, comments and `;`, as the database's own
// lexer reads them, and a UTF-8 byte-order mark at the very start). A driver checks its split
// with first_unaccounted() before it runs anything and fails the migration
// (unaccounted_text_error) when the check finds text; the fuzzers in tests/fuzz use the same
// function as their oracle.
//
// Blank is judged the way each database's lexer judges it, because they differ where it matters:
// PostgreSQL ends a `--` comment at "\r" as well as "\n" and nests `/* */` comments; SQLite ends
// `--` only at "\n" and does not nest. An unterminated `/*` is never blank: PostgreSQL refuses
// it, and SQLite, which lets it run to the end of the text (swallowing any statement after it),
// is held to what its own shell does (it refuses the file as incomplete). Where in doubt the
// check is stricter than the database, never looser: text it cannot prove blank counts as
// unaccounted.

#include <cstddef>
#include <optional>
#include <span>
#include <string_view>

#include "core/driver.hpp"
#include "core/error.hpp"

namespace dbstep {

enum class SqlDialect { kSqlite, kPostgres };

// A part of a migration file, in bytes.
struct TextSpan {
  std::size_t offset = 0;
  std::size_t length = 0;
  std::size_t end() const { return offset + length; }
};

// The offset of the first byte at or after `from` that is not whitespace or part of a comment in
// `dialect`; text.size() when there is none. `;` is not blank here.
std::size_t skip_blank(std::string_view text, std::size_t from, SqlDialect dialect);

// Like skip_blank(), also skipping `;` (empty statements, and the ends of statements).
std::size_t skip_separators(std::string_view text, std::size_t from, SqlDialect dialect);

// True when `part` holds only whitespace, comments and `;` in `dialect`. `part` is a piece of a
// file, so a byte-order mark in it is not blank (only the file's first bytes may be one).
bool is_blank(std::string_view part, SqlDialect dialect);

// The offset of the first byte of `text` that neither lies inside one of `statements` nor is
// blank (whitespace, comment, `;`, or the byte-order mark at offset 0); nullopt when the
// statements account for the whole text. `statements` must be in file order and must not
// overlap or reach past the end; a span that does either is itself reported, at its offset.
std::optional<std::size_t> first_unaccounted(std::string_view text,
                                             std::span<const TextSpan> statements,
                                             SqlDialect dialect);

// The error for text at `offset` of `step`'s file that no statement runs: names the file, the
// version, the line and column, and shows the text. Error(kMigrationFailed).
Error unaccounted_text_error(const Step& step, std::size_t offset);

// The error for a NUL byte at `offset` of `step`'s file: SQL text holds none, and a database's C
// interface would read the file as ending there. Error(kMigrationFailed) with line and column.
Error nul_byte_error(const Step& step, std::size_t offset);

// The error for a file whose own BEGIN (starting at `begin_offset`) is never committed: its
// transaction can only be rolled back, so nothing of the file is kept (the caller makes sure of
// that). Error(kMigrationFailed) with the BEGIN's line and column.
Error begin_without_commit_error(const Step& step, std::size_t begin_offset, SqlDialect dialect);

}  // namespace dbstep
