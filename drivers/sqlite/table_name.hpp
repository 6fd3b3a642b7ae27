#pragma once
// A table name given in a URL parameter (x-migrations-table, x-history-table), read the way
// SQLite reads golang-migrate's unquoted interpolation of it: `main.mig` is table mig in schema
// main, `"main.mig"` one table named main.mig, and `"main"."mig"`, `[main].[mig]` or
// `` `main`.`mig` `` the schema-qualified table again. A text that is neither one name nor two
// joined by '.' is one literal table name (as dbstep read every name before).

#include <optional>
#include <string>
#include <string_view>

#include "core/sql_text.hpp"

namespace dbstep::drivers::sqlite {

struct TableName {
  std::string schema;  // empty: unqualified (SQLite looks in main, then attached databases)
  std::string table;

  // "main"."mig", or "mig" when unqualified.
  std::string quoted() const {
    return schema.empty() ? quote_identifier(table)
                          : quote_identifier(schema) + "." + quote_identifier(table);
  }
  // main.mig, or mig, for messages.
  std::string display() const { return schema.empty() ? table : schema + "." + table; }
  // Another table in the same schema.
  TableName sibling(std::string name) const { return TableName{schema, std::move(name)}; }
};

namespace detail {

// One identifier at `i` (bare up to '.', or quoted with "", [], ``), advancing `i`.
inline std::optional<std::string> read_identifier(std::string_view text, std::size_t& i) {
  if (i >= text.size()) return std::nullopt;
  const char open = text[i];
  const char close = open == '"' ? '"' : open == '`' ? '`' : open == '[' ? ']' : '\0';
  std::string out;
  if (!close) {
    while (i < text.size() && text[i] != '.') out += text[i++];
    return out.empty() ? std::nullopt : std::optional<std::string>(out);
  }
  for (++i; i < text.size(); ++i) {
    if (text[i] == close) {
      // "" and `` stand for the quote itself; ] has no escape.
      if (close != ']' && i + 1 < text.size() && text[i + 1] == close) {
        out += close;
        ++i;
        continue;
      }
      ++i;
      return out;
    }
    out += text[i];
  }
  return std::nullopt;  // no closing quote
}

}  // namespace detail

inline TableName parse_table_name(std::string_view text) {
  std::size_t i = 0;
  auto first = detail::read_identifier(text, i);
  if (first && i == text.size()) return TableName{"", *first};
  if (first && i < text.size() && text[i] == '.') {
    ++i;
    auto second = detail::read_identifier(text, i);
    if (second && i == text.size()) return TableName{*first, *second};
  }
  return TableName{"", std::string(text)};
}

}  // namespace dbstep::drivers::sqlite
