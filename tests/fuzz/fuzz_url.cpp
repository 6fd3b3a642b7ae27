// Fuzzes core's URL parser and the password redaction that every message goes through.
//
// The first input byte picks a mode; the rest is the input.
// - Raw text (mode 0): Url::parse() either throws kInvalidArgument or gives a URL whose scheme is
//   the text before the first ':', whose redacted() is redact_secrets() of the text, and (for a
//   scheme of URL characters) whose without_custom_params() parses back to the same scheme, body
//   and non-x- parameters.
// - A secret in a known place (modes 1-3): the input supplies a password and the text around it,
//   and the fuzzer builds one of the forms the README accepts:
//     1  scheme://user:PASSWORD@host...          (PASSWORD in RFC 3986 userinfo characters)
//     2  scheme://host/db?...&password=PASSWORD&... (a query value: no '&', '#' or space)
//     3  postgres:host=h password=PASSWORD ...   (libpq key=value, plain or in single quotes)
//   inside a message (text before and after, separated by a space or a quote). Oracle: no 4-byte
//   piece of the password (the whole password when shorter) appears in redacted() or in
//   redact_secrets() of the message, unless that piece is also in the message with the password
//   replaced by "xxxxx" (then it is not the password that shows).

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include <fuzzer/FuzzedDataProvider.h>

#include "tests/fuzz/fuzz_support.hpp"
#include "core/error.hpp"
#include "core/url.hpp"

namespace {

using dbstep::fuzz::escaped;

[[noreturn]] void fail(const char* what, std::string_view input, std::string_view output) {
  std::fprintf(stderr, "fuzz_url: %s\n  input:  \"%s\"\n  output: \"%s\"\n", what,
               escaped(input).c_str(), escaped(output).c_str());
  std::abort();
}

bool is_scheme_text(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '+' || c == '-' || c == '.';
    if (!ok) return false;
  }
  return true;
}

void check_raw(std::string_view text) {
  dbstep::Url url;
  try {
    url = dbstep::Url::parse(text);
  } catch (const dbstep::Error& e) {
    if (e.code() != dbstep::ErrorCode::kInvalidArgument) fail("unexpected error code", text, "");
    (void)dbstep::redact_secrets(e.what());
    return;
  }
  if (url.scheme() != text.substr(0, text.find(':'))) fail("scheme", text, url.scheme());
  std::string redacted = url.redacted();
  if (redacted != dbstep::redact_secrets(text)) fail("redacted() != redact_secrets()", text, redacted);
  (void)url.param("x-migrations-table");
  auto backend = url.backend_params();
  std::string stripped = url.without_custom_params();
  if (!is_scheme_text(url.scheme())) return;
  dbstep::Url again = dbstep::Url::parse(stripped);
  if (again.scheme() != url.scheme() || again.body() != url.body() ||
      again.params() != backend) {
    fail("without_custom_params() does not parse back to the same URL", text, stripped);
  }
}

// Characters a password may hold in each form.
bool userinfo_char(char c) {  // RFC 3986 unreserved, sub-delims, ':' and '%' (pct-encoded)
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         std::string_view("-._~!$&'()*+,;=:%").find(c) != std::string_view::npos;
}
bool query_value_char(char c) {
  return c > ' ' && c != '&' && c != '#' && c != 0x7f;
}
bool conninfo_plain_char(char c) {  // libpq: an unquoted value ends at whitespace
  return c > ' ' && c != '\'' && c != '\\' && c != 0x7f;
}

std::string keep(std::string_view s, bool (*ok)(char)) {
  std::string out;
  for (char c : s)
    if (ok(c)) out += c;
  return out;
}

void check_secret(FuzzedDataProvider& in, int form) {
  // The text before holds no quote: an unterminated password='... there would run into the
  // message's own value, which is not a message dbstep writes.
  std::string before = in.ConsumeRandomLengthString(32);
  std::erase(before, '\'');
  std::string user = keep(in.ConsumeRandomLengthString(16), userinfo_char);
  // Without 'x', no piece of the password can be made of the "xxxxx" that replaces it.
  std::string password = in.ConsumeRandomLengthString(48);
  std::erase(password, 'x');
  std::string after = in.ConsumeRandomLengthString(32);
  std::string tail = in.ConsumeRandomLengthString(32);
  static constexpr char kOpen[] = {' ', '"', '(', '\n'};
  static constexpr char kClose[] = {' ', '"', ')', '\n'};
  char open = kOpen[in.ConsumeIntegralInRange<int>(0, 3)];
  char close = kClose[in.ConsumeIntegralInRange<int>(0, 3)];
  std::string scheme = in.ConsumeBool() ? "postgres" : "sqlite3";

  std::string head;     // the message up to the password
  std::string written;  // the password as written
  std::string rest;     // the message after the password
  if (user.find(':') != std::string::npos) user.erase(user.find(':'));
  switch (form) {
    case 1:
      written = keep(password, userinfo_char);
      head = before + open + scheme + "://" + user + ":";
      // The host and path hold no '@' '?' '#' (a '/' ends the userinfo for libpq).
      rest = "@db.example:5432/app" + std::string(in.ConsumeBool() ? "?sslmode=disable" : "") +
             close + tail;
      break;
    case 2:
      written = keep(password, query_value_char);
      if (!written.empty() && written[0] == '\'') written.erase(0, 1);  // a quote opens a quoted value
      head = before + open + scheme + "://" + (user.empty() ? "" : user + "@") +
             "db.example/app?" + keep(after, query_value_char) + (after.empty() ? "" : "&") +
             "password=";
      rest = std::string(in.ConsumeBool() ? "&sslmode=disable" : "") + close + tail;
      break;
    default:
      if (in.ConsumeBool()) {
        written = keep(password, conninfo_plain_char);
        head = before + open + "postgres:host=db.example password=";
        rest = " dbname=app" + std::string(1, close) + tail;
      } else {
        // libpq's quoted value: backslash escapes ' and \.
        std::string quoted;
        for (char c : password) {
          if (c == '\'' || c == '\\') quoted += '\\';
          quoted += c;
        }
        written = quoted;
        head = before + open + "postgres:host=db.example password='";
        rest = "' dbname=app" + std::string(1, close) + tail;
      }
      break;
  }
  if (written.empty()) return;
  std::string message = head + written + rest;
  // The message with the password hidden; for a quoted value, also the way the redaction writes
  // it (without the quotes).
  std::string ideal = head + "xxxxx" + rest;
  if (head.back() == '\'') ideal += "\n" + head.substr(0, head.size() - 1) + "xxxxx" + rest.substr(1);

  auto leaks = [&](std::string_view output) {
    std::string_view pw = written;
    std::size_t width = pw.size() < 4 ? pw.size() : 4;
    for (std::size_t i = 0; i + width <= pw.size(); ++i) {
      std::string_view piece = pw.substr(i, width);
      if (output.find(piece) != std::string_view::npos &&
          std::string_view(ideal).find(piece) == std::string_view::npos) {
        return true;
      }
    }
    return false;
  };

  std::string redacted = dbstep::redact_secrets(message);
  if (leaks(redacted)) fail("password shows in redact_secrets()", message, redacted);
  // The URL alone, as a driver gets it.
  std::string url_text = message.substr(before.size() + 1);
  url_text.erase(url_text.size() - tail.size() - 1);
  try {
    std::string r = dbstep::Url::parse(url_text).redacted();
    if (leaks(r)) fail("password shows in Url::redacted()", url_text, r);
  } catch (const dbstep::Error&) {
    fail("a well-formed URL did not parse", url_text, "");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  int mode = data[0] % 4;
  if (mode == 0) {
    check_raw(std::string_view(reinterpret_cast<const char*>(data) + 1, size - 1));
  } else {
    FuzzedDataProvider in(data + 1, size - 1);
    check_secret(in, mode);
  }
  return 0;
}
