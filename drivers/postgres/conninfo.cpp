#include "drivers/postgres/conninfo.hpp"

#include <fmt/format.h>
#include <libpq-fe.h>

#include <cstdlib>
#include <regex>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace dbstep::drivers::pg {

namespace {

// libpq's connection keywords (host, port, sslmode, options ...), from libpq itself: libpqxx
// takes a connection string and has no list of them. PQconninfoParse() of nothing lists them
// without working out their defaults, as PQconndefaults() would (the user's name from the
// password database, the service file, the environment), which PQconnectdb() does anyway.
const std::set<std::string>& libpq_keywords() {
  static const std::set<std::string> keywords = [] {
    std::set<std::string> out;
    if (PQconninfoOption* opts = PQconninfoParse("", nullptr)) {
      for (PQconninfoOption* o = opts; o->keyword; ++o) out.insert(o->keyword);
      PQconninfoFree(opts);
    }
    return out;
  }();
  return keywords;
}

// A server setting as one "-c name=value" of libpq's `options` (spaces and '\' escaped).
std::string server_option(std::string_view name, std::string_view value) {
  std::string out = "-c ";
  for (char c : fmt::format("{}={}", name, value)) {
    if (c == ' ' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

// A value of a key=value connection string: quoted, with ' and \ escaped.
std::string conninfo_value(std::string_view s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'' || c == '\\') out += '\\';
    out += c;
  }
  return out + "'";
}

}  // namespace

ConnectSpec connect_spec(const Url& url) {
  ConnectSpec spec;
  const std::string& text = url.text();
  std::string_view rest = std::string_view(text).substr(url.scheme().size() + 1);
  std::string_view head = rest.substr(0, rest.find('?'));
  const bool uri_form = head.substr(0, 2) == "//";

  // libpq understands postgres:// and postgresql:// (and nothing else) as URLs; "key=value"
  // strings come after "postgres:" and go to libpq as they are.
  std::string base;
  if (uri_form) {
    base = "postgresql:" + std::string(head);
    std::string_view after = head.substr(2);
    std::string_view authority = after.substr(0, after.find('/'));
    if (after.find('/') != std::string_view::npos) {
      spec.url_path = percent_decode(after.substr(after.find('/')));
    }
    auto at = authority.rfind('@');
    if (at != std::string_view::npos) {
      std::string_view userinfo = authority.substr(0, at);
      auto colon = userinfo.find(':');
      if (colon != std::string_view::npos) {
        std::string_view pw = userinfo.substr(colon + 1);
        spec.secrets.emplace_back(pw);
        spec.secrets.push_back(percent_decode(pw));
      }
    }
  } else {
    base = std::string(head);
    static const std::regex pw(R"(password\s*=\s*('((?:[^'\\]|\\.)*)'|[^\s]+))", std::regex::icase);
    for (std::sregex_iterator it(base.begin(), base.end(), pw), end; it != end; ++it) {
      spec.secrets.push_back((*it)[2].matched ? (*it)[2].str() : (*it)[1].str());
    }
  }
  const bool as_uri = uri_form || base.empty();
  if (base.empty()) base = "postgresql://";

  std::vector<std::pair<std::string, std::string>> keywords;
  std::string options;
  bool has_app_name = false, has_encoding = false;
  for (const auto& [key, value] : url.backend_params()) {
    if (key == "password") spec.secrets.push_back(value);
    if (key == "application_name" || key == "fallback_application_name") has_app_name = true;
    if (key == "client_encoding") has_encoding = true;
    if (key == "options") {
      options += (options.empty() ? "" : " ") + value;
    } else if (libpq_keywords().count(key)) {
      keywords.emplace_back(key, value);
    } else if (key == "binary_parameters" || key == "disable_prepared_binary_result") {
      // lib/pq's client-side switches: nothing to do for libpq.
    } else {
      // lib/pq sends unknown parameters (search_path, statement_timeout ...) to the server as
      // settings; libpq would reject them, so they travel in `options`.
      options += (options.empty() ? "" : " ") + server_option(key, value);
    }
  }
  if (!options.empty()) keywords.emplace_back("options", options);
  if (!has_app_name) keywords.emplace_back("fallback_application_name", "dbstep");
  // PostgreSQL reports error positions in characters of the client encoding; files are UTF-8.
  if (!has_encoding) keywords.emplace_back("client_encoding", "UTF8");

  spec.conninfo = base;
  char separator = '?';
  for (const auto& [key, value] : keywords) {
    if (as_uri) {
      spec.conninfo += separator + percent_encode(key) + "=" + percent_encode(value);
      separator = '&';
    } else {
      spec.conninfo += " " + key + "=" + conninfo_value(value);
    }
  }
  return spec;
}

bool bounded_by_libpq(const std::string& conninfo) {
  if (std::getenv("PGCONNECT_TIMEOUT") || std::getenv("PGSERVICE")) return true;
  bool bounded = false;
  if (PQconninfoOption* opts = PQconninfoParse(conninfo.c_str(), nullptr)) {
    for (PQconninfoOption* o = opts; o->keyword; ++o) {
      const std::string_view key = o->keyword;
      if (o->val && *o->val && (key == "connect_timeout" || key == "service")) bounded = true;
    }
    PQconninfoFree(opts);
  }
  return bounded;
}

}  // namespace dbstep::drivers::pg
