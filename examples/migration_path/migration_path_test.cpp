// Migration-path tests of dbstep's default migrations (migrations/), as an application's own
// suite would write them with dbstep::testing: migration 6 moves channel topics out of `channels`
// into a table of their own, so data written at version 5 must come out of version 6 in the new
// shape, and back again when 6 is rolled back. Each table row runs on a database of its own,
// copied from a template at its `from` version in a few milliseconds.
//
// PostgreSQL cases need a server: export DBSTEP_TEST_POSTGRES_URL=$(scripts/pg-cluster.sh start
// /tmp/pg). Without it they fail (as every PostgreSQL test of this project does) rather than pass
// by skipping.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <SQLiteCpp/SQLiteCpp.h>

#include <cstdlib>
#include <pqxx/pqxx>
#include <set>
#include <stdexcept>
#include <string>

#include "dbstep_embedded/default_migrations.hpp"
#include "testing/postgres_test_database.hpp"
#include "testing/sqlite_test_database.hpp"

namespace {

using dbstep::testing::MigrationSet;
using dbstep::testing::PostgresPathStep;
using dbstep::testing::PostgresTestDatabase;
using dbstep::testing::SqlitePathStep;
using dbstep::testing::SqliteTestDatabase;

const MigrationSet& default_migrations() {
  static const MigrationSet set = MigrationSet::embedded(dbstep_embedded::default_migrations());
  return set;
}

std::string postgres_server() {
  const char* url = std::getenv("DBSTEP_TEST_POSTGRES_URL");
  if (!url || !*url) {
    throw std::runtime_error(
        "DBSTEP_TEST_POSTGRES_URL is not set: start a server with "
        "`scripts/pg-cluster.sh start DIR` and export the URL it prints");
  }
  return url;
}

// --- SQLite -------------------------------------------------------------------------------------

std::set<std::string> sqlite_columns(SQLite::Database& db, const std::string& table) {
  SQLite::Statement q(db, "SELECT name FROM pragma_table_info(?)");
  q.bind(1, table);
  std::set<std::string> names;
  while (q.executeStep()) names.insert(q.getColumn(0).getString());
  return names;
}

TEST_CASE("SQLite: topics move from channels to channel_topics (5 -> 6) and back (6 -> 5)") {
  SqliteTestDatabase::run_path(default_migrations(), {
    SqlitePathStep{
        .from = 5,
        .to = 6,
        .setup_data =
            [](SQLite::Database& db) {
              db.exec(
                  "INSERT INTO channels (id, name, topic) VALUES (1, 'general', 'Say hello'), "
                  "(2, 'random', NULL), (3, 'releases', 'Ship it, O''Brien')");
            },
        .validate_data =
            [](SQLite::Database& db) {
              // Every topic moved, with its channel; a channel without one got no row.
              SQLite::Statement q(db,
                                  "SELECT channel_id, topic, set_at IS NOT NULL FROM "
                                  "channel_topics ORDER BY channel_id");
              REQUIRE(q.executeStep());
              CHECK(q.getColumn(0).getInt() == 1);
              CHECK(q.getColumn(1).getString() == "Say hello");
              CHECK(q.getColumn(2).getInt() == 1);
              REQUIRE(q.executeStep());
              CHECK(q.getColumn(0).getInt() == 3);
              CHECK(q.getColumn(1).getString() == "Ship it, O'Brien");
              CHECK_FALSE(q.executeStep());
              CHECK(db.execAndGet("SELECT count(*) FROM channels").getInt() == 3);
            },
        .validate_schema =
            [](SQLite::Database& db) {
              CHECK(sqlite_columns(db, "channels") ==
                    std::set<std::string>{"id", "name", "created_at"});
              CHECK(sqlite_columns(db, "channel_topics") ==
                    std::set<std::string>{"channel_id", "topic", "set_at"});
            }},
    SqlitePathStep{
        .from = 6,
        .to = 5,
        .setup_data =
            [](SQLite::Database& db) {
              db.exec("INSERT INTO channels (id, name) VALUES (1, 'general'), (2, 'random')");
              db.exec("INSERT INTO channel_topics (channel_id, topic) VALUES (1, 'Say hello')");
            },
        .validate_data =
            [](SQLite::Database& db) {
              CHECK(db.execAndGet("SELECT topic FROM channels WHERE id = 1").getString() ==
                    "Say hello");
              CHECK(db.execAndGet("SELECT topic IS NULL FROM channels WHERE id = 2").getInt() ==
                    1);
            },
        .validate_schema =
            [](SQLite::Database& db) {
              CHECK_FALSE(db.tableExists("channel_topics"));
              CHECK(sqlite_columns(db, "channels").count("topic") == 1);
            }},
  });
}

TEST_CASE("SQLite: a database from the template is at the latest version, ready to use") {
  auto t = SqliteTestDatabase::from_template(default_migrations());
  CHECK(t.version() == default_migrations().latest());
  t.db().exec("INSERT INTO users (id, name, email) VALUES (1, 'ada', 'ada@example.com')");
  CHECK(t.db().execAndGet("SELECT display_name FROM users").isNull());
}

// --- PostgreSQL ---------------------------------------------------------------------------------

std::set<std::string> pg_columns(pqxx::connection& db, const std::string& table) {
  pqxx::work tx(db);
  std::set<std::string> names;
  for (const auto& row : tx.exec_params(
           "SELECT column_name FROM information_schema.columns WHERE table_schema = "
           "current_schema() AND table_name = $1",
           table)) {
    names.insert(row[0].as<std::string>());
  }
  return names;
}

TEST_CASE("PostgreSQL: topics move from channels to channel_topics (5 -> 6) and back (6 -> 5)") {
  PostgresTestDatabase::run_path(default_migrations(), postgres_server(), {
    PostgresPathStep{
        .from = 5,
        .to = 6,
        .setup_data =
            [](pqxx::connection& db) {
              pqxx::work tx(db);
              tx.exec0(
                  "INSERT INTO channels (id, name, topic) VALUES (1, 'general', 'Say hello'), "
                  "(2, 'random', NULL), (3, 'releases', 'Ship it, O''Brien')");
              tx.commit();
            },
        .validate_data =
            [](pqxx::connection& db) {
              pqxx::work tx(db);
              auto rows = tx.exec(
                  "SELECT channel_id, topic, set_at IS NOT NULL FROM channel_topics "
                  "ORDER BY channel_id");
              REQUIRE(rows.size() == 2);
              CHECK(rows[0][0].as<int>() == 1);
              CHECK(rows[0][1].as<std::string>() == "Say hello");
              CHECK(rows[0][2].as<bool>());
              CHECK(rows[1][0].as<int>() == 3);
              CHECK(rows[1][1].as<std::string>() == "Ship it, O'Brien");
              CHECK(tx.exec1("SELECT count(*) FROM channels")[0].as<int>() == 3);
            },
        .validate_schema =
            [](pqxx::connection& db) {
              CHECK(pg_columns(db, "channels") ==
                    std::set<std::string>{"id", "name", "created_at"});
              CHECK(pg_columns(db, "channel_topics") ==
                    std::set<std::string>{"channel_id", "topic", "set_at"});
            }},
    PostgresPathStep{
        .from = 6,
        .to = 5,
        .setup_data =
            [](pqxx::connection& db) {
              pqxx::work tx(db);
              tx.exec0("INSERT INTO channels (id, name) VALUES (1, 'general'), (2, 'random')");
              tx.exec0("INSERT INTO channel_topics (channel_id, topic) VALUES (1, 'Say hello')");
              tx.commit();
            },
        .validate_data =
            [](pqxx::connection& db) {
              pqxx::work tx(db);
              CHECK(tx.exec1("SELECT topic FROM channels WHERE id = 1")[0].as<std::string>() ==
                    "Say hello");
              CHECK(tx.exec1("SELECT topic FROM channels WHERE id = 2")[0].is_null());
            },
        .validate_schema =
            [](pqxx::connection& db) {
              CHECK(pg_columns(db, "channel_topics").empty());
              CHECK(pg_columns(db, "channels").count("topic") == 1);
            }},
  });
}

TEST_CASE("PostgreSQL: a database from the template is at the latest version, ready to use") {
  auto t = PostgresTestDatabase::from_template(default_migrations(), postgres_server());
  CHECK(t.version() == default_migrations().latest());
  pqxx::work tx(t.db());
  tx.exec0("INSERT INTO users (id, name, email) VALUES (1, 'ada', 'ada@example.com')");
  CHECK(tx.exec1("SELECT display_name FROM users")[0].is_null());
}

}  // namespace
