#include "drivers/postgres/options.hpp"

#include <fmt/format.h>

#include <charconv>
#include <regex>
#include <tuple>
#include <utility>
#include <vector>

#include "core/error.hpp"
#include "core/history.hpp"

namespace dbstep::drivers::pg {

namespace {

// Go's strconv.ParseBool, with its error text, as golang-migrate reports it.
bool go_parse_bool(std::string_view key, std::string_view v) {
  if (v == "1" || v == "t" || v == "T" || v == "TRUE" || v == "true" || v == "True") return true;
  if (v == "0" || v == "f" || v == "F" || v == "FALSE" || v == "false" || v == "False")
    return false;
  throw Error(ErrorCode::kInvalidArgument,
              fmt::format("unable to parse option {}: strconv.ParseBool: parsing \"{}\": invalid "
                          "syntax",
                          key, v));
}

std::int64_t parse_millis(std::string_view key, std::string_view v) {
  std::int64_t out = 0;
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (v.empty() || ec != std::errc() || end != v.data() + v.size() || out < 0) {
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("unable to parse option {}: \"{}\" is not a whole number of "
                            "milliseconds (e.g. {}=15000)",
                            key, v, key));
  }
  // The server's settings (statement_timeout, lock_timeout) are 32-bit integers.
  if (out > 2147483647) {
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("option {}: {} milliseconds is more than PostgreSQL takes (at most "
                            "2147483647, about 24 days)",
                            key, v));
  }
  return out;
}

// A table name under x-migrations-table-quoted: "table" or "schema"."table" (golang-migrate's
// rules and messages; `key` names the parameter).
std::pair<std::optional<std::string>, std::string> parse_quoted_table(std::string_view key,
                                                                      const std::string& table) {
  if (table.size() < 2 || table.front() != '"' || table.back() != '"') {
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("{} must be quoted (for instance "
                            "'\"migrate\".\"schema_migrations\"') when "
                            "x-migrations-table-quoted is enabled, current value is: {}",
                            key, table));
  }
  static const std::regex part("\"(.*?)\"");
  std::vector<std::string> parts;
  for (std::sregex_iterator it(table.begin(), table.end(), part), end; it != end; ++it) {
    parts.push_back((*it)[1].str());
  }
  if (parts.size() > 2) {
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("\"{}\" MigrationsTable contains too many dot characters", table));
  }
  std::optional<std::string> schema;
  if (parts.size() == 2) schema = parts[0];
  return {schema, parts.back()};
}

}  // namespace

Options parse_options(const Url& url) {
  Options c;
  std::string table = url.param("x-migrations-table").value_or("");
  std::string history = url.param("x-history-table").value_or("");
  bool quoted = false;
  if (auto q = url.param("x-migrations-table-quoted"); q && !q->empty()) {
    quoted = go_parse_bool("x-migrations-table-quoted", *q);
  }
  if (quoted) {
    if (table.empty()) {
      throw Error(ErrorCode::kInvalidArgument,
                  "x-migrations-table-quoted is enabled but x-migrations-table is missing (for "
                  "instance x-migrations-table=\"migrate\".\"schema_migrations\")");
    }
    std::tie(c.schema, c.table) = parse_quoted_table("x-migrations-table", table);
  } else if (!table.empty()) {
    c.table = table;
  }
  if (c.table.empty()) {
    throw Error(ErrorCode::kInvalidArgument, "x-migrations-table names an empty table name");
  }
  // The history table follows the version table: the same schema and the same quoting rules.
  c.history_schema = c.schema;
  c.history_table = default_history_table(c.table);
  if (quoted && !history.empty()) {
    auto [schema, name] = parse_quoted_table("x-history-table", history);
    if (schema) c.history_schema = schema;
    c.history_table = name;
  } else if (!history.empty()) {
    c.history_table = history;
  }
  if (c.history_table.empty()) {
    throw Error(ErrorCode::kInvalidArgument, "x-history-table names an empty table name");
  }
  if (auto v = url.param("x-statement-timeout"); v && !v->empty()) {
    c.statement_timeout_ms = parse_millis("x-statement-timeout", *v);
  }
  if (auto v = url.param("x-lock-timeout"); v && !v->empty()) {
    c.lock_timeout = std::chrono::milliseconds(parse_millis("x-lock-timeout", *v));
  }
  if (auto v = url.param("x-multi-statement"); v && !v->empty()) {
    go_parse_bool("x-multi-statement", *v);  // validated as golang-migrate does, then ignored
  }
  if (auto v = url.param("x-lock-strategy"); v && !v->empty()) {
    if (*v == "advisory") {
      c.lock_strategy = LockStrategy::kAdvisory;
    } else if (*v == "table") {
      c.lock_strategy = LockStrategy::kTable;
    } else {
      throw Error(ErrorCode::kInvalidArgument,
                  fmt::format("unknown lock strategy \"{}\" in x-lock-strategy (use advisory or "
                              "table)",
                              *v));
    }
  }
  if (auto v = url.param("x-lock-table"); v && !v->empty()) c.lock_table = *v;
  return c;
}

}  // namespace dbstep::drivers::pg
