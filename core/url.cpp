#include "core/url.hpp"

#include <algorithm>
#include <cctype>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "core/error.hpp"
#include "core/sql_text.hpp"

namespace dbstep {

namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::string percent_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      int hi = hex_value(s[i + 1]);
      int lo = hex_value(s[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(s[i]);
  }
  return out;
}

std::string percent_encode(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += fmt::format("%{:02X}", c);
    }
  }
  return out;
}

bool is_plain_path(std::string_view text) {
  if (text.empty() || text.find("://") != std::string_view::npos) return false;
  if (text[0] == '/' || text[0] == '.') return true;
  return text.find(':') == std::string_view::npos && text.find('=') == std::string_view::npos;
}

std::string url_for_path(std::string_view scheme, std::string_view path) {
  std::string url(scheme);
  url += "://";
  for (char c : path) {
    if (c == '%') {
      url += "%25";
    } else if (c == '?') {
      url += "%3F";
    } else {
      url += c;
    }
  }
  return url;
}

Url Url::parse(std::string_view text) {
  if (text.empty()) throw Error(ErrorCode::kInvalidArgument, "URL cannot be empty");
  auto colon = text.find(':');
  if (colon == std::string_view::npos || colon == 0) {
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("URL \"{}\" has no scheme (expected scheme://...)", redact_secrets(text)));
  }
  Url url;
  url.text_ = std::string(text);
  url.scheme_ = std::string(text.substr(0, colon));
  std::string_view rest = text.substr(colon + 1);
  if (rest.substr(0, 2) == "//") rest.remove_prefix(2);
  auto q = rest.find('?');
  url.body_ = percent_decode(rest.substr(0, q));
  if (q != std::string_view::npos) {
    std::string_view query = rest.substr(q + 1);
    while (!query.empty()) {
      auto amp = query.find('&');
      std::string_view item = query.substr(0, amp);
      if (!item.empty()) {
        auto eq = item.find('=');
        std::string key = percent_decode(item.substr(0, eq));
        std::string value = eq == std::string_view::npos ? "" : percent_decode(item.substr(eq + 1));
        url.params_.emplace_back(std::move(key), std::move(value));
        url.raw_params_.emplace_back(item);
      }
      if (amp == std::string_view::npos) break;
      query.remove_prefix(amp + 1);
    }
  }
  return url;
}

std::optional<std::string> Url::param(std::string_view key) const {
  std::optional<std::string> found;
  for (const auto& [k, v] : params_)
    if (k == key) found = v;
  return found;
}

std::vector<std::pair<std::string, std::string>> Url::backend_params() const {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& p : params_)
    if (p.first.rfind("x-", 0) != 0) out.push_back(p);
  return out;
}

std::string Url::without_custom_params() const {
  auto q = text_.find('?');
  std::string out = text_.substr(0, q);
  char sep = '?';
  for (std::size_t i = 0; i < params_.size(); ++i) {
    if (params_[i].first.rfind("x-", 0) == 0) continue;
    out += sep;
    out += raw_params_[i];
    sep = '&';
  }
  return out;
}

std::string Url::redacted() const { return redact_secrets(text_); }

std::string redact_secrets(std::string_view text) {
  // A linear scan (std::regex recurses per character and can exhaust the stack on a long
  // statement). Two shapes hold secrets:
  //   scheme://user:SECRET@host  - everything from the first ':' after "://" to the last '@'
  //                                 before the query, since a password may hold '/' or '@';
  //   password=SECRET             - in a query string or a libpq "key=value" string, quoted or not.
  // Each rule marks what it hides on the original text and the union is hidden, so one rule's
  // match never makes the scan skip another's ("?o=a://b:c&password=p@ss" hides "p@ss").
  std::vector<std::pair<std::size_t, std::size_t>> hidden;  // [begin, end) byte ranges
  const auto is_scheme_char = [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '.' || c == '-';
  };
  // The end of the current URL-like token and its last '@', found once per token.
  std::size_t token_end = 0;
  std::size_t token_last_at = std::string_view::npos;
  // A password= value is not searched for another password= (that keeps the scan linear), but a
  // URL inside it still is: "password= sqlite3://u:p@h" hides p too.
  std::size_t value_end = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text.compare(i, 3, "://") == 0 && i > 0 && is_scheme_char(text[i - 1])) {
      std::size_t start = i + 3;
      if (start > token_end) {
        token_end = start;
        while (token_end < text.size() && text[token_end] != '?' && text[token_end] != '#' &&
               !std::isspace(static_cast<unsigned char>(text[token_end]))) {
          ++token_end;
        }
        std::size_t at = text.substr(start, token_end - start).rfind('@');
        token_last_at = at == std::string_view::npos ? at : start + at;
      }
      if (token_last_at != std::string_view::npos && token_last_at >= start) {
        std::size_t colon = text.find(':', start);
        if (colon < token_last_at) hidden.emplace_back(colon + 1, token_last_at);
      }
      continue;
    }
    if (i >= value_end && (i == 0 || !std::isalnum(static_cast<unsigned char>(text[i - 1]))) &&
        text.size() - i >= 8 && ascii_lower(text.substr(i, 8)) == "password") {
      std::size_t j = i + 8;
      while (j < text.size() && text[j] == ' ') ++j;
      if (j < text.size() && text[j] == '=') {
        ++j;
        while (j < text.size() && text[j] == ' ') ++j;
        const std::size_t value = j;
        // In a URL's query the value ends at '&'; in a libpq "key=value" string only at a space
        // ("password=ab&cd" is all password there). A quote protects spaces; what follows the
        // closing quote up to the end of the value is hidden too ("password='ab'cd" in a query).
        const bool in_query = i > 0 && (text[i - 1] == '?' || text[i - 1] == '&');
        if (j < text.size() && text[j] == '\'') {
          ++j;
          while (j < text.size() && text[j] != '\'') j += text[j] == '\\' ? 2 : 1;
          j = std::min(j + 1, text.size());
        }
        while (j < text.size() && !(in_query && text[j] == '&') &&
               !std::isspace(static_cast<unsigned char>(text[j]))) {
          ++j;
        }
        hidden.emplace_back(value, j);  // empty for "password=": still shown as xxxxx
        value_end = j;
      }
    }
  }

  // Both rules add ranges in increasing order of where they begin, except that a password=
  // range can begin inside an earlier "://" range: sort, then merge overlapping ones.
  std::sort(hidden.begin(), hidden.end());
  std::string out;
  out.reserve(text.size());
  std::size_t pos = 0;
  for (std::size_t k = 0; k < hidden.size();) {
    auto [begin, end] = hidden[k];
    for (++k; k < hidden.size() && hidden[k].first <= end; ++k) end = std::max(end, hidden[k].second);
    out.append(text.substr(pos, begin - pos));
    out += "xxxxx";
    pos = end;
  }
  out.append(text.substr(pos));
  return out;
}

bool parse_bool_param(std::string_view key, std::string_view value) {
  std::string v = ascii_lower(value);
  if (v == "1" || v == "t" || v == "true" || v == "yes" || v == "on") return true;
  if (v == "0" || v == "f" || v == "false" || v == "no" || v == "off") return false;
  throw Error(ErrorCode::kInvalidArgument,
              fmt::format("{}: invalid syntax: \"{}\" is not a boolean (use true or false)", key,
                          value));
}

}  // namespace dbstep
