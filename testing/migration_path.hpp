#pragma once
// Migration-path tests: every migration that changes the shape of data ships with a test that takes
// a database to the version before it, puts in data of the old shape, moves to the version after
// it, and checks that the data survived and the schema changed as intended. A suite writes them as
// a table of PathStep rows and runs it on the test database type it wants:
//
//   using dbstep::testing::SqliteTestDatabase;
//   SqliteTestDatabase::run_path(set, {
//       {.from = 5, .to = 6,
//        .setup_data = [](SQLite::Database& db) { db.exec("INSERT INTO channels
//        ..."); }, .validate_data = [](SQLite::Database& db) { CHECK(...); },
//        .validate_schema = [](SQLite::Database& db) { CHECK(...); }},
//   });
//
// Each row runs on a database of its own, copied from the set's template at `from` (so rows do not
// depend on each other and each costs milliseconds): setup_data, then the move to `to` (up or
// down), then validate_schema, then validate_data. A row whose `from` is none starts from an empty
// database. Callbacks may be empty. They run on the test's thread, so doctest's CHECK and REQUIRE
// work inside them; what they throw goes through unchanged. A failed move throws Error naming the
// row ("migration path 5 -> 6: moving the test database ... failed ...").

#include <fmt/format.h>

#include <functional>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/version.hpp"

namespace dbstep::testing {

template <typename Connection>
struct PathStep {
  OptVersion from;  // the version the data is set up at (none: an empty database)
  Version to = 0;   // the version it is checked at
  std::function<void(Connection&)> setup_data;
  std::function<void(Connection&)> validate_data;
  std::function<void(Connection&)> validate_schema;
};

// Runs `steps` in order, each on the database `open(step.from)` returns (a SqliteTestDatabase or
// PostgresTestDatabase; see the header comment). SqliteTestDatabase::run_path() and
// PostgresTestDatabase::run_path() call it with from_template() / empty().
template <typename Connection, typename Open>
void run_migration_path(const std::vector<PathStep<Connection>>& steps, Open&& open) {
  for (const auto& step : steps) {
    const std::string row = fmt::format("migration path {} -> {}", to_string(step.from), step.to);
    auto database = open(step.from);
    if (step.setup_data) step.setup_data(database.db());
    try {
      database.migrate_to(step.to);
    } catch (const Error& e) {
      throw e.with_message(row + ": " + e.what());
    }
    if (step.validate_schema) step.validate_schema(database.db());
    if (step.validate_data) step.validate_data(database.db());
  }
}

}  // namespace dbstep::testing
