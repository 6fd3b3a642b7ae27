#pragma once
// Small helpers over migration text that every driver needs the same way: the UTF-8 byte-order
// mark, line/column of a byte offset (for error messages), the leading-comment directive
// `-- dbstep:no-transaction`, and the first keyword of a statement. Splitting statements is not
// here: each driver uses its database's own lexer for that.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace dbstep {

// The length of a UTF-8 byte-order mark at the start of `text` (3), or 0.
std::size_t bom_length(std::string_view text);

struct TextPosition {
  std::uint32_t line = 1;    // 1-based; "\n" and "\r\n" each end one line
  std::uint32_t column = 1;  // 1-based, in characters (UTF-8 code points), not bytes
};
// The position of byte `offset` of `text` (clamped to its size). A BOM does not count as a
// column.
TextPosition position_at(std::string_view text, std::size_t offset);

// The byte offset of the `index`-th character (0-based, UTF-8 code points) of `text`, or
// text.size() when it has fewer characters. PostgreSQL reports error positions in characters.
std::size_t byte_offset_of_char(std::string_view text, std::size_t index);

// True when the comments before the first statement contain `directive` as a word, e.g.
// has_directive(sql, "dbstep:no-transaction") for "-- dbstep:no-transaction\nCREATE ...".
bool has_directive(std::string_view sql, std::string_view directive);

// Skips whitespace, "-- ..." line comments and "/* ... */" block comments from the start.
std::size_t skip_space_and_comments(std::string_view sql, std::size_t from = 0);

// The first word of a statement, upper-cased ("BEGIN", "COMMIT", "CREATE"), after whitespace and
// comments; empty when there is none.
std::string first_keyword(std::string_view statement);

// An SQL identifier in double quotes, as SQLite and PostgreSQL read it: '"' doubled, cut at the
// first NUL (golang-migrate's pq.QuoteIdentifier).
std::string quote_identifier(std::string_view name);

// ASCII lower case (keywords, parameter values).
std::string ascii_lower(std::string_view s);

// Whether `text` holds `lower_word` (given in lower case) in any ASCII case, anywhere (comments
// and strings included): a keyword pre-check, without copying the text.
bool contains_ascii_ci(std::string_view text, std::string_view lower_word);

// A statement's text for messages: trimmed, and cut to `max` characters with "..." if longer.
std::string statement_excerpt(std::string_view statement, std::size_t max = 200);

}  // namespace dbstep
