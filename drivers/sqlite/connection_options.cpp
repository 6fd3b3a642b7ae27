#include "drivers/sqlite/connection_options.hpp"

#include <SQLiteCpp/Database.h>

#include <string>
#include <string_view>

#include <fmt/format.h>

#include "core/error.hpp"
#include "core/sql_text.hpp"

namespace dbstep::drivers::sqlite {

namespace {

// The file a URL's path names. golang-migrate hands sqlite3://file:u.db to SQLite as the URI
// file:u.db, which opens the file u.db: the lock file, the existence checks, the backup and the
// messages all use the file's own path, so `file:u.db` and `u.db` share one lock.
std::string file_path_of(std::string_view body) {
  if (body.rfind("file:", 0) != 0) return std::string(body);
  std::string_view rest = body.substr(5);
  if (rest.rfind("//", 0) == 0) {  // file:///abs/u.db, file://localhost/abs/u.db
    rest.remove_prefix(2);
    const auto slash = rest.find('/');
    const std::string_view authority = rest.substr(0, slash);
    if (!authority.empty() && authority != "localhost") {
      throw Error(ErrorCode::kInvalidArgument,
                  fmt::format("SQLite URI {} names host \"{}\": only a local file (file:PATH, "
                              "file:///ABSOLUTE/PATH) can be opened",
                              body, authority));
    }
    rest = slash == std::string_view::npos ? std::string_view() : rest.substr(slash);
  }
  return percent_decode(rest.substr(0, rest.find_first_of("?#")));
}

// A file name as the path part of an SQLite "file:" URI.
std::string uri_escape_path(std::string_view path) {
  std::string out;
  for (char c : path) {
    if (c == '%' || c == '?' || c == '#') {
      out += fmt::format("%{:02X}", static_cast<unsigned char>(c));
    } else {
      out += c;
    }
  }
  return out;
}

std::string uri_escape_value(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '%' || c == '&' || c == '#' || c == '=') {
      out += fmt::format("%{:02X}", static_cast<unsigned char>(c));
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

ConnectionOptions parse_connection_options(const Url& url) {
  ConnectionOptions o;
  o.path = file_path_of(url.body());
  if (o.path.empty()) {
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("SQLite URL {} names no file; use sqlite://PATH (relative) or "
                            "sqlite:///ABSOLUTE/PATH",
                            url.redacted()));
  }
  std::string uri_query;
  for (const auto& [key, value] : url.params()) {
    if (key.rfind("x-", 0) == 0 || key.rfind("_", 0) == 0) {
      o.scratch_params.emplace_back(key, value);
    }
    if (key == "x-migrations-table") {
      if (value.empty()) {
        throw Error(ErrorCode::kInvalidArgument, "x-migrations-table must not be empty");
      }
      o.version_table = value;  // "main.mig": schema main, table mig (split by the driver: parse_table_name)
    } else if (key == "x-history-table") {
      if (value.empty()) {
        throw Error(ErrorCode::kInvalidArgument, "x-history-table must not be empty");
      }
      o.history_table = value;
    } else if (key == "x-no-tx-wrap") {
      o.no_tx_wrap = parse_bool_param(key, value);
    } else if (key.rfind("x-", 0) == 0) {
      // Unknown x- keys belong to other tools (golang-migrate drivers); ignored.
    } else if (key == "_foreign_keys" || key == "_fk") {
      o.pragmas.push_back(fmt::format("PRAGMA foreign_keys = {}",
                                    parse_bool_param(key, value) ? "ON" : "OFF"));
    } else if (key == "_journal_mode" || key == "_journal") {
      std::string mode = ascii_lower(value);
      if (mode != "delete" && mode != "truncate" && mode != "persist" && mode != "memory" &&
          mode != "wal" && mode != "off") {
        throw Error(ErrorCode::kInvalidArgument,
                    fmt::format("{}={}: not a journal mode (DELETE, TRUNCATE, PERSIST, MEMORY, "
                                "WAL, OFF)",
                                key, value));
      }
      o.pragmas.push_back("PRAGMA journal_mode = " + mode);
    } else if (key == "_synchronous" || key == "_sync") {
      std::string mode = ascii_lower(value);
      if (mode != "off" && mode != "normal" && mode != "full" && mode != "extra" && mode != "0" &&
          mode != "1" && mode != "2" && mode != "3") {
        throw Error(ErrorCode::kInvalidArgument,
                    fmt::format("{}={}: not a synchronous mode (OFF, NORMAL, FULL, EXTRA)", key,
                                value));
      }
      o.pragmas.push_back("PRAGMA synchronous = " + mode);
    } else if (key == "_busy_timeout" || key == "_timeout") {
      try {
        o.busy_ms = std::stoi(value);
        o.busy_from_url = true;
      } catch (const std::exception&) {
        throw Error(ErrorCode::kInvalidArgument,
                    fmt::format("{}={}: not a number of milliseconds", key, value));
      }
    } else {
      uri_query += fmt::format("{}{}={}", uri_query.empty() ? "?" : "&", uri_escape_value(key),
                               uri_escape_value(value));
    }
  }
  o.filename = o.path;
  // NOMUTEX: the driver uses its connection from one thread (SQLite's own locking of every call
  // is pure cost then); interrupt() from another thread stays safe, as sqlite3_interrupt()
  // documents.
  o.flags = SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE | SQLite::OPEN_NOMUTEX;
  o.memory = o.path == ":memory:" || !uri_query.empty();
  if (!uri_query.empty()) {
    o.filename = "file:" + uri_escape_path(o.path) + uri_query;
    o.flags |= SQLite::OPEN_URI;
  }
  return o;
}

}  // namespace dbstep::drivers::sqlite
