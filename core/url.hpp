#pragma once
// URLs as golang-migrate reads them: "scheme://rest?query". The scheme is everything before the
// first ':' (golang-migrate's SchemeFromURL), so "mysql://u:p@tcp(h:1)/db" has scheme "mysql".
// Query parameters whose key starts with "x-" belong to dbstep and never reach a database server;
// the others belong to the back end (libpq, SQLite). redacted() is the only form of a URL that
// may appear in output: it hides the password.

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace dbstep {

class Url {
 public:
  // Throws Error(kInvalidArgument) for an empty string or one without "scheme:".
  static Url parse(std::string_view text);

  const std::string& scheme() const { return scheme_; }
  // The part between "scheme://" (or "scheme:") and '?', percent-decoded.
  const std::string& body() const { return body_; }
  // Every query parameter in order, keys and values percent-decoded.
  const std::vector<std::pair<std::string, std::string>>& params() const { return params_; }

  // The value of a parameter, if present (the last one wins when repeated).
  std::optional<std::string> param(std::string_view key) const;
  // Parameters whose key does not start with "x-", in order.
  std::vector<std::pair<std::string, std::string>> backend_params() const;
  // The URL as given with every x- parameter removed and everything else byte for byte.
  std::string without_custom_params() const;
  // The URL with the password (user:PASSWORD@ or password=...) replaced by "xxxxx".
  std::string redacted() const;
  const std::string& text() const { return text_; }

 private:
  std::string text_;
  std::string scheme_;
  std::string body_;
  std::vector<std::pair<std::string, std::string>> params_;
  std::vector<std::string> raw_params_;  // "k=v" exactly as written, same order as params_
};

std::string percent_decode(std::string_view s);
// The inverse for a URL's parts: every byte but letters, digits and "-_.~" as %XX.
std::string percent_encode(std::string_view s);

// Whether a database given as `text` is a plain file path rather than a URL: "app.db",
// "./data/app.db", "/var/lib/app.db". A text with "://", or with "scheme:" or '=' and not
// starting with '/' or '.', is not one (a URL, "sqlite:app.db", a libpq "key=value" string).
bool is_plain_path(std::string_view text);
// `path` as a URL of `scheme` for the same file or folder: url_for_path("sqlite", "a?.db") is
// "sqlite://a%3F.db". '%' and '?' are escaped, so they stay in the name rather than start an
// escape or the query; nothing else is (the URL reads like the path).
std::string url_for_path(std::string_view scheme, std::string_view path);

// Hides passwords in any text that may hold a URL or a libpq "key=value" string.
std::string redact_secrets(std::string_view text);

// Parses "true/false/1/0/yes/no/on/off/t/f" (any case) as golang-migrate's ParseBool does,
// plus yes/no/on/off. Throws Error(kInvalidArgument) naming the parameter otherwise.
bool parse_bool_param(std::string_view key, std::string_view value);

}  // namespace dbstep
