#include "core/sql_text.hpp"

#include <algorithm>
#include <cctype>

namespace dbstep {

namespace {

bool is_continuation(unsigned char c) { return (c & 0xC0) == 0x80; }

bool is_word_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == ':' || c == '-';
}

}  // namespace

std::size_t bom_length(std::string_view text) {
  return text.substr(0, 3) == "\xEF\xBB\xBF" ? 3 : 0;
}

TextPosition position_at(std::string_view text, std::size_t offset) {
  if (offset > text.size()) offset = text.size();
  TextPosition pos;
  for (std::size_t i = bom_length(text); i < offset; ++i) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (c == '\n') {
      ++pos.line;
      pos.column = 1;
    } else if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') {
      // The '\n' that follows ends the line; '\r' takes no column.
    } else if (!is_continuation(c)) {
      ++pos.column;
    }
  }
  return pos;
}

std::size_t byte_offset_of_char(std::string_view text, std::size_t index) {
  std::size_t chars = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (is_continuation(static_cast<unsigned char>(text[i]))) continue;
    if (chars == index) return i;
    ++chars;
  }
  return text.size();
}

std::size_t skip_space_and_comments(std::string_view sql, std::size_t i) {
  while (i < sql.size()) {
    unsigned char c = static_cast<unsigned char>(sql[i]);
    if (std::isspace(c)) {
      ++i;
    } else if (sql.compare(i, 2, "--") == 0) {
      auto nl = sql.find('\n', i);
      i = nl == std::string_view::npos ? sql.size() : nl + 1;
    } else if (sql.compare(i, 2, "/*") == 0) {
      auto end = sql.find("*/", i + 2);
      i = end == std::string_view::npos ? sql.size() : end + 2;
    } else {
      break;
    }
  }
  return i;
}

bool has_directive(std::string_view sql, std::string_view directive) {
  std::size_t start = bom_length(sql);
  std::string_view header = sql.substr(start, skip_space_and_comments(sql, start) - start);
  for (std::size_t at = header.find(directive); at != std::string_view::npos;
       at = header.find(directive, at + 1)) {
    bool left = at == 0 || !(std::isalnum(static_cast<unsigned char>(header[at - 1])) ||
                             header[at - 1] == '_' || header[at - 1] == ':');
    std::size_t end = at + directive.size();
    bool right = end >= header.size() || !is_word_char(header[end]);
    if (left && right) return true;
  }
  return false;
}

std::string first_keyword(std::string_view statement) {
  std::size_t i = skip_space_and_comments(statement, bom_length(statement));
  std::string word;
  while (i < statement.size() && std::isalpha(static_cast<unsigned char>(statement[i]))) {
    word.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(statement[i]))));
    ++i;
  }
  return word;
}

std::string quote_identifier(std::string_view name) {
  name = name.substr(0, name.find('\0'));
  std::string out = "\"";
  for (char c : name) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
  return out;
}

std::string ascii_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool contains_ascii_ci(std::string_view text, std::string_view lower_word) {
  const auto same = [](char c, char lower) {
    return (c >= 'A' && c <= 'Z' ? static_cast<char>(c + ('a' - 'A')) : c) == lower;
  };
  return std::search(text.begin(), text.end(), lower_word.begin(), lower_word.end(), same) !=
         text.end();
}

std::string statement_excerpt(std::string_view statement, std::size_t max) {
  std::size_t b = skip_space_and_comments(statement, bom_length(statement));
  std::size_t e = statement.size();
  while (e > b && std::isspace(static_cast<unsigned char>(statement[e - 1]))) --e;
  std::string_view s = statement.substr(b, e - b);
  std::size_t cut = byte_offset_of_char(s, max);
  if (cut >= s.size()) return std::string(s);
  return std::string(s.substr(0, cut)) + "...";
}

}  // namespace dbstep
