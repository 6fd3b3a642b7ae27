#pragma once
// The PostgreSQL driver's own URL parameters (the x- keys postgres_driver.hpp lists), read and
// checked before anything connects. Pure: a bad value throws Error(kInvalidArgument) with
// golang-migrate's wording where golang-migrate has one, and no server is involved.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "core/url.hpp"

namespace dbstep::drivers::pg {

enum class LockStrategy {
  kAdvisory,  // session advisory locks with golang-migrate's keys (the default)
  kTable,     // a row per key in a lock table, for poolers that do not keep sessions
};

struct Options {
  // The version table, unquoted, and its schema when x-migrations-table-quoted names one (else
  // the current schema).
  std::string table = "schema_migrations";
  std::optional<std::string> schema;
  // The history table (x-history-table, default "<table>_history"), and its schema when
  // x-migrations-table-quoted names one (default: the version table's).
  std::string history_table;
  std::optional<std::string> history_schema;
  std::int64_t statement_timeout_ms = 0;              // x-statement-timeout; 0: the server's
  std::optional<std::chrono::milliseconds> lock_timeout;  // x-lock-timeout overrides lock()'s
  LockStrategy lock_strategy = LockStrategy::kAdvisory;
  std::string lock_table = "schema_lock";             // x-lock-table
};

// Reads the x- parameters of `url`; other keys are the connection's (connection.hpp).
Options parse_options(const Url& url);

}  // namespace dbstep::drivers::pg
