// The PostgreSQL driver: the shared conformance suite against a real server, then what is
// PostgreSQL's own (statement splitting, CONCURRENTLY, search_path, quoting, lock keys and lock
// waits, errors and passwords, drop).
//
// The server comes from DBSTEP_TEST_POSTGRES_URL (scripts/pg-cluster.sh start DIR prints one);
// without it every test here fails: a PostgreSQL test never passes by skipping. Each test case
// works in a database of its own (t_<random>), dropped at the end, so cases can run in parallel.

#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <limits>
#include <memory>
#include <optional>
#include <random>
#include <regex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <mutex>
#include <thread>
#include <vector>

#include "core/checksum.hpp"
#include "core/history.hpp"
#include "core/registry.hpp"
#include "core/url.hpp"
#include "drivers/postgres/connection.hpp"
#include "drivers/postgres/postgres_driver.hpp"
#include "tests/drivers/conformance.hpp"
#include "tests/loopback.hpp"
#include "tests/postgres_server.hpp"

namespace {

using namespace dbstep;
using namespace std::chrono_literals;
using dbstep::testing::capture_error;
using dbstep::testing::make_step;
using dbstep::testing::up_step;
using dbstep::testing::PgConnection;
using dbstep::testing::postgres_server_url;
using dbstep::testing::url_with_database;
using dbstep::testing::url_with_params;

std::string random_name(std::string_view prefix) {
  static std::mt19937_64 rng(std::random_device{}());
  return std::string(prefix) + std::to_string(rng() % 1000000000000ULL);
}

struct PostgresFixture {
  static constexpr const char* kName = "postgres";
  std::string admin_url = postgres_server_url();
  std::string db = random_name("t_");
  std::string url = url_with_database(admin_url, db);
  std::unique_ptr<PgConnection> conn;

  PostgresFixture() {
    PgConnection admin(admin_url);
    admin.scalar("CREATE DATABASE " + db);
    conn = std::make_unique<PgConnection>(url);
  }
  ~PostgresFixture() {
    conn.reset();
    try {
      PgConnection admin(admin_url);
      admin.scalar("DROP DATABASE IF EXISTS " + db + " WITH (FORCE)");
    } catch (...) {
    }
  }
  PostgresFixture(const PostgresFixture&) = delete;
  PostgresFixture& operator=(const PostgresFixture&) = delete;

  std::unique_ptr<Driver> open(std::string_view params = "") {
    return drivers::open_postgres(Url::parse(url_with_params(url, params)));
  }
  std::int64_t query_int(std::string_view sql) { return std::stoll(conn->scalar(std::string(sql))); }
  bool table_exists(std::string_view name) {
    return conn->scalar("SELECT to_regclass('" + std::string(name) + "') IS NOT NULL") == "t";
  }
  bool relation_exists(std::string_view qualified_literal) {
    return conn->scalar("SELECT to_regclass(" + std::string(qualified_literal) + ") IS NOT NULL") ==
           "t";
  }
  void exec(std::string_view sql) { conn->scalar(std::string(sql)); }
  std::string query(std::string_view sql) { return conn->scalar(std::string(sql)); }
};

bool contains(const std::string& haystack, std::string_view needle) {
  return haystack.find(needle) != std::string::npos;
}

const DbState kNone{};

}  // namespace

TEST_CASE_TEMPLATE_INVOKE(driver_conformance, PostgresFixture);

TEST_CASE("postgres: golang-migrate's advisory lock key vectors") {
  CHECK(drivers::advisory_lock_key("database_name") == 1764327054u);
  CHECK(drivers::advisory_lock_key("database_name", {"schema_name_1"}) == 2453313553u);
  CHECK(drivers::advisory_lock_key("database_name", {"schema_name_2"}) == 235207038u);
  CHECK(drivers::advisory_lock_key("database_name", {"schema_name_1", "schema_name_2"}) ==
        3743845847u);
  // golang-migrate's CLI hashes the URL path ("/postgres"), its library current_database().
  CHECK(drivers::advisory_lock_key("/postgres", {"public", "schema_migrations"}) == 3280485947u);
  CHECK(drivers::advisory_lock_key("postgres", {"public", "schema_migrations"}) == 143310882u);
}

TEST_CASE("postgres: a failing second statement rolls back the first") {
  PostgresFixture fx;
  auto d = fx.open();
  auto e = capture_error([&] {
    d->apply(up_step(1, "CREATE TABLE foo (foo text); CREATE TABLEE bar (bar text);"), kNone);
  });
  CHECK(e.code() == ErrorCode::kMigrationFailed);
  CHECK(e.sqlstate == "42601");
  CHECK(e.line == 1);
  CHECK(e.column == 37);  // golang-migrate's vector: (column 37) on line 1
  CHECK(e.statement == "CREATE TABLEE bar (bar text)");
  CHECK(contains(e.what(),
                 "migration 1 (1_test.up.sql) failed at line 1, column 37: syntax "
                 "error at or near \"TABLEE\" (SQLSTATE 42601)"));
  CHECK_FALSE(fx.table_exists("foo"));
  CHECK(d->state() == kNone);
  CHECK_FALSE(fx.table_exists("schema_migrations"));  // created in the transaction, rolled back
}

TEST_CASE("postgres: $$ bodies, quoted strings and comments full of semicolons are not cut") {
  PostgresFixture fx;
  auto d = fx.open();
  const std::string sql = R"SQL(
-- a comment; with semicolons;
CREATE TABLE log (msg text);
/* block; comment; */
CREATE FUNCTION add_log(m text) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
  n integer;
BEGIN
  INSERT INTO log VALUES (m || ';');
  SELECT count(*) INTO n FROM log;
  RETURN n;
END;
$$;
CREATE FUNCTION tagged() RETURNS text LANGUAGE sql AS $body$ SELECT 'a;b'::text; $body$;
DO $$
BEGIN
  PERFORM add_log('one; two');
  PERFORM add_log(E'three\'; four');
  IF (SELECT count(*) FROM log) <> 2 THEN RAISE EXCEPTION 'bad count;'; END IF;
END
$$;
INSERT INTO log VALUES ('semi;colon'), ($q$dollar;quoted$q$);
)SQL";
  REQUIRE(d->apply(up_step(1, sql), kNone));
  CHECK(fx.query_int("SELECT count(*) FROM log") == 4);
  CHECK(fx.query("SELECT msg FROM log ORDER BY msg LIMIT 1") == "dollar;quoted");
  CHECK(fx.query("SELECT tagged()") == "a;b");
  CHECK(fx.query_int("SELECT add_log('x')") == 5);
  CHECK(d->state() == DbState{1, false});

  // A runtime error inside a DO block rolls everything back and says where the block starts.
  auto e = capture_error([&] {
    d->apply(up_step(2,
                     "INSERT INTO log VALUES ('kept?');\n"
                     "DO $$\nBEGIN\n  RAISE EXCEPTION 'boom; %', 42;\nEND\n$$;\n"),
             DbState{1, false});
  });
  CHECK(e.code() == ErrorCode::kMigrationFailed);
  CHECK(e.line == 2);
  CHECK(e.sqlstate == "P0001");
  CHECK(contains(e.what(), "boom; 42"));
  CHECK(contains(e.what(), "PL/pgSQL"));  // the context names the line inside the block
  CHECK(fx.query_int("SELECT count(*) FROM log WHERE msg = 'kept?'") == 0);
  CHECK(d->state() == DbState{1, false});
}

TEST_CASE("postgres: CREATE INDEX CONCURRENTLY runs outside a transaction") {
  PostgresFixture fx;
  auto d = fx.open();
  REQUIRE(d->apply(up_step(1, "CREATE TABLE t (a int, b int);"), kNone));

  SUBCASE("alone in its file") {
    CHECK(d->apply(up_step(2,
                           "-- golang-migrate's example\nCREATE UNIQUE INDEX CONCURRENTLY "
                           "t_a ON t (a);\n"),
                   DbState{1, false}));
    CHECK(d->state() == DbState{2, false});
    CHECK(fx.relation_exists("'t_a'"));
  }
  SUBCASE("mixed with other statements: each runs on its own, in order") {
    CHECK(d->apply(up_step(2,
                           "INSERT INTO t VALUES (1, 1);\n"
                           "CREATE INDEX CONCURRENTLY t_b ON t (b);\n"
                           "DROP INDEX CONCURRENTLY t_b;\n"
                           "CREATE INDEX CONCURRENTLY t_b2 ON t (b);\n"
                           "VACUUM t;\n"),
                   DbState{1, false}));
    CHECK(d->state() == DbState{2, false});
    CHECK(fx.relation_exists("'t_b2'"));
    CHECK(fx.query_int("SELECT count(*) FROM t") == 1);
  }
  SUBCASE("a failure after it leaves the database dirty at the target, the earlier work done") {
    auto e = capture_error([&] {
      d->apply(up_step(2,
                       "CREATE INDEX CONCURRENTLY t_b ON t (b);\n"
                       "INSERT INTO nope VALUES (1);\n"),
               DbState{1, false});
    });
    CHECK(e.code() == ErrorCode::kMigrationFailed);
    CHECK(e.line == 2);
    CHECK(e.column == 13);
    CHECK(fx.relation_exists("'t_b'"));
    CHECK(d->state() == DbState{2, true});
  }
  SUBCASE("the state check comes first: a moved database runs nothing") {
    CHECK_FALSE(d->apply(up_step(3, "CREATE INDEX CONCURRENTLY t_c ON t (a);"), DbState{2, false}));
    CHECK_FALSE(fx.relation_exists("'t_c'"));
    CHECK(d->state() == DbState{1, false});
  }
}

TEST_CASE("postgres: statements PostgreSQL runs only outside a transaction are told by the parser") {
  PostgresFixture fx;
  auto d = fx.open();
  // apply_batch() reads each file before running it and refuses, naming the statement, any file
  // that cannot run in its transaction: nothing below ever runs.
  auto refusal = [&](const std::string& sql) {
    std::vector<Step> steps = {up_step(1, sql)};
    std::size_t i = 0;
    try {
      d->apply_batch(kNone, [&]() -> const Step* { return i < steps.size() ? &steps[i++] : nullptr; });
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("(accepted)");
  };
  const std::pair<const char*, const char*> refused[] = {
      {"VACUUM;", "it holds VACUUM"},
      {"vacuum /* a comment */ (verbose, analyze);", "it holds VACUUM"},
      {"CREATE UNIQUE INDEX CONCURRENTLY i ON t (x);", "it holds CREATE INDEX CONCURRENTLY"},
      {"create index\n-- why\nconcurrently i ON t (x);", "it holds CREATE INDEX CONCURRENTLY"},
      {"DROP INDEX CONCURRENTLY IF EXISTS i;", "it holds DROP INDEX CONCURRENTLY"},
      {"REINDEX TABLE CONCURRENTLY t;", "it holds REINDEX"},
      {"REINDEX SYSTEM postgres;", "it holds REINDEX"},
      {"ALTER SYSTEM SET work_mem = '4MB';", "it holds ALTER SYSTEM"},
      {"CREATE DATABASE x;", "it holds CREATE DATABASE"},
      {"DROP DATABASE IF EXISTS x;", "it holds DROP DATABASE"},
      {"CREATE TABLESPACE ts LOCATION '/nowhere';", "it holds CREATE TABLESPACE"},
      {"DROP TABLESPACE ts;", "it holds DROP TABLESPACE"},
      {"CREATE SUBSCRIPTION s CONNECTION 'host=x' PUBLICATION p;", "it holds CREATE SUBSCRIPTION"},
      {"DROP SUBSCRIPTION s;", "it holds DROP SUBSCRIPTION"},
      {"ALTER SUBSCRIPTION s REFRESH PUBLICATION;", "REFRESH PUBLICATION"},
      {"ALTER DATABASE x SET TABLESPACE ts;", "it holds ALTER DATABASE ... SET TABLESPACE"},
      {"CLUSTER;", "it holds CLUSTER"},
      {"DISCARD ALL;", "it holds DISCARD ALL"},
      {"CREATE TABLE a (x int);\nCOMMIT;", "it controls transactions itself"},
      {"START TRANSACTION ISOLATION LEVEL SERIALIZABLE;\nCREATE TABLE a (x int);\nCOMMIT;",
       "it controls transactions itself"},
      {"BEGIN;\nCREATE TABLE a (x int);\nCOMMIT AND CHAIN;\nCOMMIT;", "it controls transactions itself"},
      {"PREPARE TRANSACTION 'x';", "it controls transactions itself"},
  };
  for (const auto& [statement, why] : refused) {
    const std::string sql = statement;
    CAPTURE(sql);
    std::string message = refusal(sql);
    CAPTURE(message);
    CHECK(contains(message, "cannot run inside a transaction"));
    CHECK(contains(message, why));
  }
  // The same words where they are harmless: names, strings, comments, and the forms of these
  // commands that PostgreSQL does run in a transaction.
  const char* accepted[] = {
      "CREATE TABLE system_copy (database text, \"concurrently\" int, \"vacuum\" text);\n"
      "INSERT INTO system_copy VALUES ('DROP DATABASE x; VACUUM', 1, 'COMMIT');\n"
      "-- CREATE INDEX CONCURRENTLY would not run here\n"
      "CREATE INDEX system_copy_i ON system_copy (\"concurrently\");\n"
      "ANALYZE system_copy;\n"
      "REINDEX TABLE system_copy;\n"
      "CLUSTER system_copy USING system_copy_i;\n"
      "DISCARD TEMP;\n"
      "SAVEPOINT s; RELEASE SAVEPOINT s;\n"
      "COPY (SELECT 1) TO '/dev/null';\n"
      "DROP TABLE system_copy;\n",
  };
  for (const std::string sql : accepted) {
    CAPTURE(sql);
    CHECK(refusal(sql) == "(accepted)");
    CHECK(d->state() == DbState{1, false});
    d->set_state(kNone);
  }
}

TEST_CASE("postgres: files with their own BEGIN/COMMIT") {
  PostgresFixture fx;
  auto d = fx.open();
  SUBCASE("one BEGIN ... COMMIT around the file joins dbstep's transaction") {
    auto e = capture_error([&] {
      d->apply(up_step(1,
                       "BEGIN;\nCREATE TABLE w1 (x int);\nSAVEPOINT s; RELEASE SAVEPOINT s;\n"
                       "INSERT INTO w1 VALUES ('nope');\nCOMMIT;\n"),
               kNone);
    });
    CHECK(e.code() == ErrorCode::kMigrationFailed);
    CHECK(e.line == 4);
    CHECK_FALSE(fx.table_exists("w1"));
    CHECK(d->state() == kNone);  // atomic: nothing remains, nothing is dirty
    CHECK(d->apply(up_step(1, "BEGIN;\nCREATE TABLE w1 (x int);\nCOMMIT;\n"), kNone));
    CHECK(fx.table_exists("w1"));
    CHECK(d->state() == DbState{1, false});
  }
  SUBCASE("several transactions run as written, under the dirty protocol") {
    auto e = capture_error([&] {
      d->apply(up_step(1,
                       "BEGIN; CREATE TABLE w1 (x int); COMMIT;\n"
                       "BEGIN; CREATE TABLE w2 (x int); INSERT INTO w2 VALUES ('bad'); COMMIT;\n"),
               kNone);
    });
    CHECK(e.code() == ErrorCode::kMigrationFailed);
    CHECK(e.line == 2);
    CHECK(fx.table_exists("w1"));
    CHECK_FALSE(fx.table_exists("w2"));  // its own transaction rolled back
    CHECK(d->state() == DbState{1, true});
    // The connection is clean again: the next write works.
    d->set_state({1, false});
    CHECK(d->state() == DbState{1, false});
  }
  SUBCASE("a BEGIN left open is rolled back and reported") {
    auto e = capture_error([&] {
      d->apply(up_step(1, "CREATE TABLE w0 (x int);\nBEGIN;\nCREATE TABLE w3 (x int);\n"), kNone);
    });
    CHECK(e.code() == ErrorCode::kMigrationFailed);
    CHECK(contains(e.what(), "does not end"));
    CHECK(fx.table_exists("w0"));
    CHECK_FALSE(fx.table_exists("w3"));
    CHECK(d->state() == DbState{1, true});
  }
  SUBCASE("outside a transaction, a BEGIN left open with nothing committed leaves no dirty mark") {
    for (const char* sql : {"-- dbstep:no-transaction\nBEGIN;\nCREATE TABLE w4 (x int);\n",
                            "-- dbstep:no-transaction\nBEGIN;\nCREATE TABLE w4 (x int);\nSELECT nope;\n"}) {
      CAPTURE(sql);
      auto e = capture_error([&] { d->apply(up_step(1, sql), kNone); });
      CHECK(e.code() == ErrorCode::kMigrationFailed);
      CHECK_FALSE(fx.table_exists("w4"));
      CHECK(d->state() == kNone);
    }
  }
}

TEST_CASE("postgres: deferred constraints fail at COMMIT and roll back") {
  PostgresFixture fx;
  auto d = fx.open();
  REQUIRE(d->apply(up_step(1,
                           "CREATE TABLE p (id int primary key);\n"
                           "CREATE TABLE c (pid int references p (id) DEFERRABLE INITIALLY "
                           "DEFERRED);\n"),
                   kNone));
  auto e = capture_error([&] {
    d->apply(up_step(2, "INSERT INTO c VALUES (42);\nCREATE TABLE z (x int);"), DbState{1, false});
  });
  CHECK(e.code() == ErrorCode::kMigrationFailed);
  CHECK(e.sqlstate == "23503");
  CHECK(contains(e.what(), "at COMMIT"));
  CHECK_FALSE(fx.table_exists("z"));
  CHECK(d->state() == DbState{1, false});
}

TEST_CASE("postgres: COPY FROM STDIN fails cleanly instead of hanging") {
  PostgresFixture fx;
  auto d = fx.open();
  auto e = capture_error(
      [&] { d->apply(up_step(1, "CREATE TABLE cp (x int);\nCOPY cp FROM STDIN;\n"), kNone); });
  CHECK(e.code() == ErrorCode::kMigrationFailed);
  CHECK(e.line == 2);
  CHECK(d->state() == kNone);
  CHECK(d->apply(up_step(1, "CREATE TABLE cp (x int);"), kNone));
  // Once the version table is known, migrations travel in one pipeline; COPY cannot, so that
  // file still runs statement by statement, behind the same state check.
  auto e2 = capture_error([&] {
    d->apply(up_step(2, "INSERT INTO cp VALUES (1);\nCOPY cp FROM STDIN;\n"), DbState{1, false});
  });
  CHECK(e2.code() == ErrorCode::kMigrationFailed);
  CHECK(e2.line == 2);
  CHECK(fx.query_int("SELECT COUNT(*) FROM cp") == 0);
  CHECK_FALSE(d->apply(up_step(3, "COPY cp FROM STDIN;"), DbState{2, false}));
  CHECK(d->state() == DbState{1, false});
}

TEST_CASE("postgres: error positions follow golang-migrate's vectors, CRLF and non-ASCII") {
  PostgresFixture fx;
  auto d = fx.open();
  struct Case {
    std::string sql;
    std::uint32_t line, column;
  };
  const Case cases[] = {
      {"SELECT *\nFROM foo", 2, 6},    // relation "foo" does not exist at 15
      {"SELECT *\n\nFROM foo", 3, 6},  // 16
      {"SELECT *\nFROM foo\nWHERE x", 2, 6},
      {"SELECT *\nFROMM foo", 2, 1},  // syntax error at "FROMM": 10
      {"SELECT *\r\nFROM foo", 2, 6},
      {"SELECT *\r\n\r\nFROM foo", 3, 6},
      {"SELECT '\xC3\xA9\xC3\xA9', *\r\nFROM foo", 2, 6},
      {"-- \xE2\x98\x95\xE2\x98\x95\r\nSELECT 1;\r\n  SELECT '\xC3\xA9' || x FROM foo", 3, 24},
      {"SELECT 1;\n/* \xC3\xA9 */ SELECT nope_column;", 2, 16},
  };
  for (const auto& c : cases) {
    CAPTURE(c.sql);
    auto e = capture_error([&] { d->apply(up_step(7, c.sql), kNone); });
    CHECK(e.code() == ErrorCode::kMigrationFailed);
    CHECK(e.line == c.line);
    CHECK(e.column == c.column);
    CHECK(contains(e.what(), "7_test.up.sql"));
    CHECK(contains(e.what(),
                   "line " + std::to_string(c.line) + ", column " + std::to_string(c.column)));
  }
  // Without a position, the failing statement's first line is reported.
  auto e = capture_error([&] {
    d->apply(up_step(7, "CREATE TABLE u (x int unique);\n\n  INSERT INTO u VALUES (1), (1);"),
             kNone);
  });
  CHECK(e.line == 3);
  CHECK(e.column == 3);
  CHECK(e.sqlstate == "23505");
  CHECK(contains(e.what(), "detail: Key (x)=(1) already exists."));
}

TEST_CASE("postgres: in one query message, a failure still names its statement, line and column") {
  // After the session's first write a migration travels as one simple-query message behind
  // BEGIN: the server's position counts characters of the whole text, and a syntax error in any
  // statement stops the whole text before anything runs.
  PostgresFixture fx;
  auto d = fx.open();
  REQUIRE(d->apply(up_step(1, "CREATE TABLE one (x text);"), kNone));
  struct Case {
    std::string sql;
    std::uint32_t line, column;
    std::string sqlstate;
  };
  const Case cases[] = {
      // Runs, then fails: the third statement, after two with non-ASCII text.
      {"INSERT INTO one VALUES ('\xC3\xA9\xE2\x98\x95');\nSELECT '\xC3\xA9';\n  SELECT nope FROM one;",
       3, 10, "42703"},
      // Does not parse: nothing ran, the position says which statement.
      {"INSERT INTO one VALUES ('\xC3\xA9');\nSELECT 1;\nSELECT 1 FROMM one;", 3, 16, "42601"},
      // No position: the statement after the last that succeeded.
      {"INSERT INTO one VALUES ('a');\nSELECT 1 / 0;", 2, 1, "22012"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.sql);
    auto e = capture_error([&] { d->apply(up_step(2, c.sql), DbState{1, false}); });
    CHECK(e.code() == ErrorCode::kMigrationFailed);
    CHECK(e.line == c.line);
    CHECK(e.column == c.column);
    CHECK(e.sqlstate == c.sqlstate);
    CHECK(d->state() == DbState{1, false});
    CHECK(fx.query_int("SELECT COUNT(*) FROM one") == 0);
  }
}

TEST_CASE("postgres: search_path isolates schemas: two version tables, two locks") {
  PostgresFixture fx;
  fx.exec("CREATE SCHEMA alpha; CREATE SCHEMA beta");
  auto a = fx.open("search_path=alpha");
  auto b = fx.open("search_path=beta");
  a->lock(1s);
  b->lock(1s);  // a different key: no wait
  CHECK(a->apply(up_step(1, "CREATE TABLE t (x int);"), kNone));
  CHECK(b->apply(up_step(1, "CREATE TABLE t (x int);"), kNone));
  CHECK(b->apply(up_step(2, "CREATE TABLE u (x int);"), DbState{1, false}));
  CHECK(a->state() == DbState{1, false});
  CHECK(b->state() == DbState{2, false});
  CHECK(fx.relation_exists("'alpha.schema_migrations'"));
  CHECK(fx.relation_exists("'beta.u'"));
  CHECK_FALSE(fx.relation_exists("'alpha.u'"));
  CHECK_FALSE(fx.relation_exists("'public.schema_migrations'"));
  // The same schema is the same lock.
  auto a2 = fx.open("search_path=alpha&x-lock-timeout=200");
  CHECK(capture_error([&] { a2->lock(5s); }).code() == ErrorCode::kLockTimeout);
  a->unlock();
  b->unlock();
  a2->lock(1s);
  a2->unlock();
  // A search_path whose schemas do not exist has nowhere to keep the table.
  auto e = capture_error([&] { fx.open("search_path=no_such_schema"); });
  CHECK(e.code() == ErrorCode::kDatabase);
  CHECK(contains(e.what(), "no schema"));
}

TEST_CASE("postgres: x-migrations-table, quoted and unquoted, cannot inject SQL") {
  PostgresFixture fx;
  SUBCASE("quoted: schema and table") {
    fx.exec("CREATE SCHEMA migrate");
    auto d = fx.open(
        "x-migrations-table=%22migrate%22.%22schema_migrations%22&x-migrations-"
        "table-quoted=1");
    CHECK(d->state() == kNone);
    CHECK(d->apply(up_step(1, "CREATE TABLE t (x int);"), kNone));
    CHECK(fx.relation_exists("'migrate.schema_migrations'"));
    CHECK_FALSE(fx.relation_exists("'public.schema_migrations'"));
    CHECK(fx.query_int("SELECT version FROM migrate.schema_migrations") == 1);
  }
  SUBCASE("unquoted: a table literally named with a dot, in the current schema") {
    auto d = fx.open("x-migrations-table=migrate.schema_migrations");
    CHECK(d->apply(up_step(1, "CREATE TABLE t (x int);"), kNone));
    CHECK(fx.relation_exists("'public.\"migrate.schema_migrations\"'"));
  }
  SUBCASE("golang-migrate's errors") {
    auto e = capture_error([&] {
      fx.open("x-migrations-table=migrate.schema_migrations&x-migrations-table-quoted=1");
    });
    CHECK(e.code() == ErrorCode::kInvalidArgument);
    CHECK(std::string(e.what()) ==
          "x-migrations-table must be quoted (for instance '\"migrate\".\"schema_migrations\"') "
          "when x-migrations-table-quoted is enabled, current value is: "
          "migrate.schema_migrations");
    e = capture_error([&] {
      fx.open("x-migrations-table=%22a%22.%22b%22.%22c%22&x-migrations-table-quoted=true");
    });
    CHECK(std::string(e.what()) ==
          "\"\"a\".\"b\".\"c\"\" MigrationsTable contains too many dot "
          "characters");
    e = capture_error([&] { fx.open("x-migrations-table-quoted=yeppers"); });
    CHECK(std::string(e.what()) ==
          "unable to parse option x-migrations-table-quoted: "
          "strconv.ParseBool: parsing \"yeppers\": invalid syntax");
  }
  SUBCASE("an injection attempt is a strange table name, nothing more") {
    fx.exec("CREATE TABLE victim (x int)");
    auto d = fx.open("x-migrations-table=v%22%3B%20DROP%20TABLE%20victim%3B%20--");
    CHECK(d->state() == kNone);
    d->lock(1s);
    CHECK(d->apply(up_step(1, "SELECT 1;"), kNone));
    d->set_state({2, false});
    CHECK(d->state() == DbState{2, false});
    d->drop();
    d->unlock();
    CHECK(fx.query_int("SELECT count(*) FROM pg_class WHERE relname = 'victim'") == 0);  // drop()
    fx.exec("CREATE TABLE victim (x int)");
    auto d2 = fx.open("x-migrations-table=v%22%3B%20DROP%20TABLE%20victim%3B%20--");
    CHECK(d2->apply(up_step(1, "SELECT 1;"), kNone));
    CHECK(fx.table_exists("victim"));
    CHECK(fx.query_int("SELECT count(*) FROM pg_class WHERE relname = 'v\"; DROP TABLE victim; "
                       "--'") == 1);
  }
}

TEST_CASE("postgres: URL parameters") {
  PostgresFixture fx;
  SUBCASE("non-x parameters reach libpq or the server; x- parameters never do") {
    auto d = fx.open(
        "application_name=param-test&search_path=public&x-anything=1&"
        "x-multi-statement=true&x-multi-statement-max-size=10");
    REQUIRE(d->apply(up_step(1,
                             "CREATE TABLE seen AS SELECT current_setting('application_name') "
                             "AS app, current_setting('search_path') AS sp;"),
                     kNone));
    CHECK(fx.query("SELECT app FROM seen") == "param-test");
    CHECK(fx.query("SELECT sp FROM seen") == "public");
  }
  SUBCASE("x-statement-timeout bounds each statement") {
    auto d = fx.open("x-statement-timeout=100");
    auto e = capture_error([&] { d->apply(up_step(1, "SELECT pg_sleep(5);"), kNone); });
    CHECK(e.code() == ErrorCode::kMigrationFailed);
    CHECK(e.sqlstate == "57014");
    CHECK(d->state() == kNone);
  }
  SUBCASE("bad values are refused before connecting") {
    CHECK(capture_error([&] { fx.open("x-statement-timeout=soon"); }).code() ==
          ErrorCode::kInvalidArgument);
    CHECK(capture_error([&] { fx.open("x-lock-timeout=-5"); }).code() ==
          ErrorCode::kInvalidArgument);
    // Past the server's 32-bit settings: refused here, not at the first transaction.
    auto big = capture_error([&] { fx.open("x-statement-timeout=3000000000"); });
    CHECK(big.code() == ErrorCode::kInvalidArgument);
    CHECK(contains(big.what(), "2147483647"));
    CHECK(capture_error([&] { fx.open("x-lock-strategy=mutex"); }).code() ==
          ErrorCode::kInvalidArgument);
    auto e = capture_error([&] { fx.open("x-multi-statement=maybe"); });
    CHECK(contains(e.what(), "unable to parse option x-multi-statement"));
  }
  SUBCASE("libpq's key=value form and its environment defaults") {
    // postgres:KEY=VALUE ... goes to libpq as it is.
    PgConnection probe(fx.url);
    std::string port = probe.scalar("SELECT current_setting('port')");
    auto d = drivers::open_postgres(Url::parse("postgres:host=127.0.0.1 port=" + port +
                                               " user=postgres dbname=" + fx.db +
                                               " sslmode=disable?x-migrations-table=kv"));
    CHECK(d->apply(up_step(1, "CREATE TABLE kv_t (x int);"), kNone));
    CHECK(fx.query_int("SELECT version FROM kv") == 1);
    // postgres:// alone: everything from PG* variables (and libpq's defaults).
    ::setenv("PGHOST", "127.0.0.1", 1);
    ::setenv("PGPORT", port.c_str(), 1);
    ::setenv("PGUSER", "postgres", 1);
    ::setenv("PGDATABASE", fx.db.c_str(), 1);
    auto env = drivers::open_postgres(Url::parse("postgres://?x-migrations-table=kv"));
    ::unsetenv("PGHOST");
    ::unsetenv("PGPORT");
    ::unsetenv("PGUSER");
    ::unsetenv("PGDATABASE");
    CHECK(env->state() == DbState{1, false});
    // postgresql:// is the same driver.
    auto alias = drivers::open_postgres(
        Url::parse("postgresql" + fx.url.substr(fx.url.find("://")) + "&x-migrations-table=kv"));
    CHECK(alias->state() == DbState{1, false});
  }
}

TEST_CASE("postgres: a password never appears in messages") {
  PostgresFixture fx;
  const std::string secret = "s3cr3t-pw-Zq";
  SUBCASE("connection refused") {
    for (std::string url : {"postgres://postgres:" + secret + "@127.0.0.1:1/db?sslmode=disable",
                            "postgres://postgres@127.0.0.1:1/db?password=" + secret,
                            "postgres:host=127.0.0.1 port=1 password=" + secret + " dbname=x",
                            "postgres:host=127.0.0.1 port=1 password='" + secret + "' dbname=x",
                            "postgres://postgres:" + secret + "@127.0.0.1:1/db?sslmode=bogus",
                            "postgres:host=127.0.0.1 password=" + secret + " nonsense"}) {
      CAPTURE(url);
      auto e = capture_error([&] { drivers::open_postgres(Url::parse(url)); });
      CHECK(e.code() == ErrorCode::kDatabase);
      CHECK_FALSE(contains(e.what(), secret));
      CHECK_FALSE(contains(e.detail, secret));
    }
  }
  SUBCASE("describe, lock timeouts and migration errors") {
    // The test server trusts every connection, so any password works to connect.
    std::string url = fx.url;
    url.insert(url.find("://") + 3 + std::string("postgres").size(), ":" + secret);
    REQUIRE(contains(url, secret));
    auto d = drivers::open_postgres(Url::parse(url + "&x-lock-timeout=100"));
    CHECK_FALSE(contains(d->describe(), secret));
    CHECK(contains(d->describe(), "xxxxx"));
    auto holder = drivers::open_postgres(Url::parse(url));
    holder->lock(1s);
    auto e = capture_error([&] { d->lock(1s); });
    CHECK(e.code() == ErrorCode::kLockTimeout);
    CHECK_FALSE(contains(e.what(), secret));
    holder->unlock();
    e = capture_error(
        [&] { d->apply(up_step(1, "SELECT '" + secret + "' FROM nowhere;"), kNone); });
    CHECK(e.code() == ErrorCode::kMigrationFailed);
    CHECK_FALSE(contains(e.what(), secret));
  }
}

TEST_CASE("postgres: lock waits up to the timeout and says who holds it") {
  PostgresFixture fx;
  auto holder = fx.open("application_name=holder-app");
  holder->lock(1s);
  auto waiter = fx.open();
  const auto started = std::chrono::steady_clock::now();
  auto e = capture_error([&] { waiter->lock(700ms); });
  const auto waited = std::chrono::steady_clock::now() - started;
  CHECK(e.code() == ErrorCode::kLockTimeout);
  CHECK(waited >= 650ms);
  CHECK(waited < 5s);
  CHECK(contains(e.what(), "timed out after"));
  CHECK(contains(e.what(), "holder-app"));
  CHECK(contains(e.what(), "pg_terminate_backend"));
  // The waiter holds nothing after a timeout: once the holder lets go, it gets the lock.
  std::thread release([&] {
    std::this_thread::sleep_for(300ms);
    holder->unlock();
  });
  waiter->lock(10s);  // waits for the release, then succeeds
  release.join();
  waiter->unlock();

  SUBCASE("x-lock-timeout overrides the caller's timeout") {
    holder->lock(1s);
    auto quick = fx.open("x-lock-timeout=150");
    const auto t0 = std::chrono::steady_clock::now();
    CHECK(capture_error([&] { quick->lock(30s); }).code() == ErrorCode::kLockTimeout);
    CHECK(std::chrono::steady_clock::now() - t0 < 5s);
    holder->unlock();
  }
  SUBCASE("closing a driver releases its lock") {
    holder->lock(1s);
    holder.reset();
    waiter->lock(2s);
    waiter->unlock();
  }
}

TEST_CASE("postgres: a database golang-migrate left behind: its table and its lock keys") {
  PostgresFixture fx;
  // golang-migrate's postgres driver, verbatim.
  fx.exec(
      "CREATE TABLE IF NOT EXISTS \"public\".\"schema_migrations\" (version bigint not null "
      "primary key, dirty boolean not null)");
  fx.exec("INSERT INTO \"public\".\"schema_migrations\" (version, dirty) VALUES (4, false)");
  auto d = fx.open();
  CHECK(d->state() == DbState{4, false});

  // While golang-migrate (library: current_database(); CLI: the URL path "/db") holds its lock,
  // dbstep waits; and the other way round.
  for (std::string name : {fx.db, "/" + fx.db}) {
    CAPTURE(name);
    auto key = drivers::advisory_lock_key(name, {"public", "schema_migrations"});
    PgConnection gm(fx.url);
    gm.scalar("SELECT pg_advisory_lock(" + std::to_string(key) + ")");
    CHECK(capture_error([&] { d->lock(200ms); }).code() == ErrorCode::kLockTimeout);
    gm.scalar("SELECT pg_advisory_unlock(" + std::to_string(key) + ")");
    d->lock(1s);
    CHECK(gm.scalar("SELECT pg_try_advisory_lock(" + std::to_string(key) + ")") == "f");
    d->unlock();
  }
  CHECK(d->apply(up_step(5, "CREATE TABLE five (x int);"), DbState{4, false}));
  CHECK(fx.query_int("SELECT version FROM schema_migrations") == 5);
  CHECK(fx.query("SELECT dirty::text FROM schema_migrations") == "false");
  // golang-migrate's dirty marker is dbstep's dirty state.
  fx.exec("UPDATE schema_migrations SET dirty = true");
  CHECK(d->state() == DbState{5, true});
}

TEST_CASE("postgres: x-lock-strategy=table") {
  PostgresFixture fx;
  auto a = fx.open("x-lock-strategy=table");
  auto b = fx.open("x-lock-strategy=table&x-lock-timeout=300");
  a->lock(1s);
  CHECK(fx.table_exists("schema_lock"));
  CHECK(fx.query_int("SELECT count(*) FROM schema_lock") >= 1);
  auto e = capture_error([&] { b->lock(1s); });
  CHECK(e.code() == ErrorCode::kLockTimeout);
  CHECK(contains(e.what(), "DELETE FROM \"public\".\"schema_lock\""));
  // drop() keeps the lock table while the lock is held in it.
  a->drop();
  CHECK(fx.table_exists("schema_lock"));
  a->unlock();
  CHECK(fx.query_int("SELECT count(*) FROM schema_lock") == 0);
  b->lock(1s);
  CHECK(b->apply(up_step(1, "CREATE TABLE t (x int);"), kNone));
  b->unlock();
  // golang-migrate's pgx driver keys its lock row by the database name.
  auto c = fx.open("x-lock-strategy=table&x-lock-table=my_locks");
  c->lock(1s);
  CHECK(fx.query_int("SELECT count(*) FROM my_locks WHERE lock_id = " +
                     std::to_string(drivers::advisory_lock_key(fx.db))) == 1);
  c->unlock();
}

TEST_CASE("postgres: drop removes every kind of object in the schema, not extensions'") {
  PostgresFixture fx;
  fx.exec("CREATE EXTENSION citext");
  fx.exec("CREATE SCHEMA other; CREATE TABLE other.keep (x int)");
  auto d = fx.open();
  REQUIRE(d->apply(up_step(1, R"SQL(
CREATE TYPE mood AS ENUM ('sad', 'ok');
CREATE TYPE pair AS (a int, b int);
CREATE TYPE span AS RANGE (subtype = float8);
CREATE DOMAIN posint AS int CHECK (VALUE > 0);
CREATE SEQUENCE free_seq;
CREATE TABLE people (id serial primary key, m mood, n posint, name citext, id2 int GENERATED ALWAYS AS IDENTITY);
CREATE TABLE parted (k int) PARTITION BY RANGE (k);
CREATE TABLE parted_1 PARTITION OF parted FOR VALUES FROM (0) TO (10);
CREATE VIEW v AS SELECT * FROM people;
CREATE MATERIALIZED VIEW mv AS SELECT count(*) FROM people;
CREATE FUNCTION f(x int) RETURNS int LANGUAGE sql AS 'SELECT x';
CREATE FUNCTION f(x text) RETURNS text LANGUAGE sql AS 'SELECT x';
CREATE PROCEDURE p() LANGUAGE sql AS 'SELECT 1';
CREATE AGGREGATE agg(int) (sfunc = int4pl, stype = int);
CREATE FUNCTION trg() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
CREATE TRIGGER t BEFORE INSERT ON people FOR EACH ROW EXECUTE FUNCTION trg();
)SQL"),
                   kNone));
  d->lock(5s);
  d->drop();
  d->unlock();
  const char* user_objects = R"SQL(
    SELECT (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = 'public'
               AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'e'))
         + (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
             WHERE n.nspname = 'public'
               AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e'))
         + (SELECT count(*) FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
             WHERE n.nspname = 'public' AND t.typcategory <> 'A'  -- arrays go with their type
               AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = t.oid AND d.deptype = 'e')))SQL";
  CHECK(fx.query_int(user_objects) == 0);
  CHECK(fx.query("SELECT 'A'::citext = 'a'::citext") == "t");  // the extension survives
  CHECK(fx.relation_exists("'other.keep'"));                   // other schemas are not touched
  CHECK(d->state() == kNone);
  CHECK(d->apply(up_step(1, "CREATE TYPE mood AS ENUM ('again');"), kNone));
}

TEST_CASE("postgres: a read-only user reads the version, and writing needs rights, not luck") {
  PostgresFixture fx;
  fx.open()->set_state({3, false});
  const std::string role = random_name("ro_");
  fx.exec("CREATE ROLE " + role + " LOGIN");
  fx.exec("GRANT SELECT ON schema_migrations TO " + role);
  fx.exec("REVOKE CREATE ON SCHEMA public FROM PUBLIC");
  std::string url = fx.url;
  url.replace(url.find("postgres@"), std::string("postgres@").size(), role + "@");
  {
    auto ro = drivers::open_postgres(Url::parse(url));
    CHECK(ro->state() == DbState{3, false});
    auto e = capture_error([&] { ro->set_state({4, false}); });
    CHECK(e.code() == ErrorCode::kDatabase);
    CHECK(e.sqlstate == "42501");
  }
  fx.exec("DROP OWNED BY " + role);
  fx.exec("DROP ROLE " + role);
}

// ---------------------------------------------------------------------------------------------
// History (core/history.hpp): the rows written with each step, on PostgreSQL.

namespace {

// `s` with the history row the Migrator would hand over: its checksum, and `down` as the
// stored down SQL.
Step with_row(Step s, std::optional<std::string> down = std::nullopt) {
  HistoryRow row;
  row.version = s.version;
  row.identifier = s.identifier;
  row.direction = s.direction;
  row.kind = HistoryKind::kApplied;
  if (s.has_file()) row.checksum = migration_checksum(s.sql);
  row.down_sql = std::move(down);
  row.applied_by = current_user_at_host();
  row.dbstep_version = dbstep_release();
  s.history = row;
  return s;
}

HistoryRow hand_row(Version v, HistoryKind kind, std::optional<std::string> down = std::nullopt) {
  HistoryRow row;
  row.version = v;
  row.identifier = "v" + std::to_string(v);
  row.kind = kind;
  row.down_sql = std::move(down);
  row.applied_by = "ops@host";
  row.dbstep_version = dbstep_release();
  return row;
}

bool is_utc_millis(const std::string& text) {
  static const std::regex utc(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)");
  return std::regex_match(text, utc);
}

}  // namespace

TEST_CASE("postgres: history: one row per step, every column, down SQL bytes kept exactly") {
  PostgresFixture fx;
  auto d = fx.open();
  // Invalid UTF-8, a quote, a backslash, a NUL-free control byte and CRLF: stored as bytes.
  const std::string down = std::string("DROP TABLE a; -- it's \\ \xff\xfe\x01\r\n");
  const auto before = format_utc(std::chrono::system_clock::now() - 60s);
  REQUIRE(d->apply(with_row(up_step(1, "CREATE TABLE a (x int);"), down), kNone));
  // A step without a file: its row, checksum none.
  REQUIRE(d->apply(with_row(make_step(2, 2, "", "")), DbState{1, false}));
  // Going down: direction down, no down SQL stored.
  REQUIRE(d->apply(with_row(make_step(2, 1, "2_test.down.sql", "SELECT 1;", Direction::kDown)),
                   DbState{2, false}));
  // A step without a row (a caller that keeps no history) appends nothing.
  REQUIRE(d->apply(up_step(2, "SELECT 2;"), DbState{1, false}));
  const auto after = format_utc(std::chrono::system_clock::now() + 60s);

  auto rows = d->history();
  REQUIRE(rows);
  REQUIRE(rows->size() == 3);
  const HistoryRow& r1 = (*rows)[0];
  CHECK(r1.version == 1);
  CHECK(r1.identifier == "test");
  CHECK(r1.direction == Direction::kUp);
  CHECK(r1.kind == HistoryKind::kApplied);
  CHECK(r1.checksum == migration_checksum("CREATE TABLE a (x int);"));
  CHECK(r1.down_stored);
  CHECK_FALSE(r1.down_sql);  // history() does not carry it
  CHECK(is_utc_millis(r1.applied_at));
  CHECK(r1.applied_at > before);
  CHECK(r1.applied_at < after);
  CHECK(r1.duration_ms >= 0);
  CHECK(r1.duration_ms < 60000);
  CHECK(r1.applied_by == current_user_at_host());
  CHECK(r1.dbstep_version == dbstep_release());
  const HistoryRow& r2 = (*rows)[1];
  CHECK(r2.version == 2);
  CHECK_FALSE(r2.checksum);
  CHECK_FALSE(r2.down_stored);
  CHECK(is_utc_millis(r2.applied_at));
  const HistoryRow& r3 = (*rows)[2];
  CHECK(r3.direction == Direction::kDown);
  CHECK(r3.checksum == migration_checksum("SELECT 1;"));
  CHECK(r1.id < r2.id);
  CHECK(r2.id < r3.id);
  CHECK(r1.applied_at <= r2.applied_at);

  // The down SQL comes back byte for byte, whatever bytea_output says.
  CHECK(d->stored_down(1) == down);
  CHECK(fx.open("bytea_output=escape")->stored_down(1) == down);
  CHECK(
      fx.query("SELECT encode(down_sql, 'hex') FROM schema_migrations_history WHERE version = 1") ==
      "44524f50205441424c4520613b202d2d2069742773205c20fffe010d0a");
  CHECK_FALSE(d->stored_down(2));
  CHECK_FALSE(d->stored_down(3));
  // The version table is golang-migrate's, untouched in shape.
  CHECK(fx.query_int("SELECT count(*) FROM information_schema.columns WHERE table_name = "
                     "'schema_migrations'") == 2);
}

TEST_CASE("postgres: history: reading never creates the table") {
  PostgresFixture fx;
  auto d = fx.open();
  CHECK(d->state() == kNone);
  CHECK_FALSE(d->history());
  CHECK_FALSE(d->stored_down(1));
  CHECK_FALSE(fx.table_exists("schema_migrations_history"));
  // A write that appends no row (set_state) creates the version table only.
  d->lock(1s);
  d->set_state({3, false});
  CHECK(fx.table_exists("schema_migrations"));
  CHECK_FALSE(fx.table_exists("schema_migrations_history"));
  CHECK_FALSE(d->history());
  // A database golang-migrate left (version table only) gains history from its next step.
  REQUIRE(d->apply(with_row(up_step(4, "CREATE TABLE four (x int);")), DbState{3, false}));
  d->unlock();
  REQUIRE(d->history());
  CHECK(d->history()->size() == 1);
  CHECK(d->history()->front().version == 4);
  // A read-only user reads it.
  const std::string role = random_name("ro_");
  fx.exec("CREATE ROLE " + role + " LOGIN");
  fx.exec("GRANT SELECT ON schema_migrations, schema_migrations_history TO " + role);
  std::string url = fx.url;
  url.replace(url.find("postgres@"), std::string("postgres@").size(), role + "@");
  {
    auto ro = drivers::open_postgres(Url::parse(url));
    REQUIRE(ro->history());
    CHECK(ro->history()->size() == 1);
  }
  fx.exec("DROP OWNED BY " + role);
  fx.exec("DROP ROLE " + role);
}

TEST_CASE("postgres: history: a failing migration leaves no row and no change") {
  PostgresFixture fx;
  auto d = fx.open();
  // The first write would create both tables: the failure takes them back.
  auto e = capture_error([&] {
    d->apply(with_row(up_step(1, "CREATE TABLE a (x int); SELECT * FROM nowhere;")), kNone);
  });
  CHECK(e.code() == ErrorCode::kMigrationFailed);
  CHECK_FALSE(fx.table_exists("a"));
  CHECK_FALSE(fx.table_exists("schema_migrations"));
  CHECK_FALSE(fx.table_exists("schema_migrations_history"));
  CHECK_FALSE(d->history());
  // Once the tables exist, a failure leaves the rows as they were.
  REQUIRE(d->apply(with_row(up_step(1, "CREATE TABLE a (x int);")), kNone));
  e = capture_error([&] {
    d->apply(with_row(up_step(2, "INSERT INTO a VALUES (1); SELECT 1/0;")), DbState{1, false});
  });
  CHECK(e.code() == ErrorCode::kMigrationFailed);
  CHECK(fx.query_int("SELECT count(*) FROM a") == 0);
  CHECK(d->state() == DbState{1, false});
  REQUIRE(d->history());
  CHECK(d->history()->size() == 1);
  // A deferred constraint failing at COMMIT: no row either.
  REQUIRE(d->apply(with_row(up_step(2,
                                    "CREATE TABLE p (id int PRIMARY KEY); CREATE TABLE c (p int "
                                    "REFERENCES p DEFERRABLE INITIALLY DEFERRED);")),
                   DbState{1, false}));
  e = capture_error([&] {
    d->apply(with_row(up_step(3, "INSERT INTO c VALUES (7);")), DbState{2, false});
  });
  CHECK(contains(e.what(), "at COMMIT"));
  CHECK(d->history()->size() == 2);
  // The failed append left no trace either (no sequence moved): ids stay consecutive.
  REQUIRE(d->apply(with_row(up_step(3, "SELECT 3;")), DbState{2, false}));
  CHECK(fx.query("SELECT string_agg(id::text, ',' ORDER BY id) FROM schema_migrations_history") ==
        "1,2,3");
  // Another process moved the version first: false, and no row.
  CHECK_FALSE(d->apply(with_row(up_step(4, "SELECT 4;")), kNone));
  CHECK(d->history()->size() == 3);
}

TEST_CASE("postgres: history: migrations outside a transaction (dirty protocol)") {
  PostgresFixture fx;
  auto d = fx.open();
  REQUIRE(d->apply(with_row(up_step(1, "CREATE TABLE t (a int);")), kNone));
  SUBCASE("success: the row goes with the clean mark, with the client's timing") {
    REQUIRE(d->apply(with_row(up_step(2, "CREATE INDEX CONCURRENTLY t_a ON t (a);")),
                     DbState{1, false}));
    auto rows = d->history();
    REQUIRE(rows);
    REQUIRE(rows->size() == 2);
    CHECK(rows->back().version == 2);
    CHECK(rows->back().kind == HistoryKind::kApplied);
    CHECK(is_utc_millis(rows->back().applied_at));
    CHECK(rows->back().applied_at >= rows->front().applied_at.substr(0, 19));
    CHECK(rows->back().duration_ms >= 0);
    CHECK(d->state() == DbState{2, false});
  }
  SUBCASE("a failure after a commit leaves the database dirty and a failed row") {
    auto e = capture_error([&] {
      d->apply(with_row(up_step(2,
                                "-- dbstep:no-transaction\nCREATE TABLE u (x int);\n"
                                "CREATE TABLE u (x int);\n")),
               DbState{1, false});
    });
    CHECK(e.code() == ErrorCode::kMigrationFailed);
    CHECK(d->state() == DbState{2, true});
    auto rows = d->history();
    REQUIRE(rows);
    REQUIRE(rows->size() == 2);
    CHECK(rows->back().version == 2);
    CHECK(rows->back().kind == HistoryKind::kFailed);
    CHECK(rows->back().checksum ==
          migration_checksum("-- dbstep:no-transaction\nCREATE TABLE u (x int);\n"
                             "CREATE TABLE u (x int);\n"));
    CHECK(rows->back().duration_ms >= 0);
    // A failed row's down SQL is never used for a rollback.
    CHECK_FALSE(d->stored_down(2));
  }
  SUBCASE("a failure before anything was committed: clean again, and no row") {
    auto e = capture_error([&] {
      d->apply(with_row(up_step(2, "-- dbstep:no-transaction\nCREATE TABLE t (x int);\n")),
               DbState{1, false});
    });
    CHECK(e.code() == ErrorCode::kMigrationFailed);
    CHECK(d->state() == DbState{1, false});
    CHECK(d->history()->size() == 1);
  }
  SUBCASE("the first write of a session: the dirty mark creates the table") {
    fx.exec("DROP TABLE schema_migrations_history");
    auto fresh = fx.open();
    REQUIRE(fresh->apply(with_row(up_step(2, "VACUUM t;")), DbState{1, false}));
    REQUIRE(fresh->history());
    CHECK(fresh->history()->size() == 1);
  }
}

TEST_CASE("postgres: history: a user's table of that name is an error, and nothing is written") {
  PostgresFixture fx;
  SUBCASE("missing columns: found before the migration runs") {
    fx.exec("CREATE TABLE schema_migrations_history (id int, note text)");
    fx.exec("INSERT INTO schema_migrations_history VALUES (1, 'mine')");
    auto d = fx.open();
    auto e =
        capture_error([&] { d->apply(with_row(up_step(1, "CREATE TABLE a (x int);")), kNone); });
    CHECK(e.code() == ErrorCode::kDatabase);
    CHECK(contains(e.what(),
                   "\"public\".\"schema_migrations_history\" is not dbstep's history table"));
    CHECK(contains(e.what(), "x-history-table"));
    CHECK_FALSE(fx.table_exists("a"));
    CHECK_FALSE(fx.table_exists("schema_migrations"));
    CHECK(fx.query("SELECT string_agg(note, ',') FROM schema_migrations_history") == "mine");
    e = capture_error([&] { d->history(); });
    CHECK(e.code() == ErrorCode::kDatabase);
    CHECK(contains(e.what(), "is not dbstep's history table"));
    e = capture_error([&] { d->record_state({1, false}, {hand_row(1, HistoryKind::kBaseline)}); });
    CHECK(e.code() == ErrorCode::kDatabase);
    CHECK(d->state() == kNone);
    // Another name for dbstep's own table works.
    auto other = fx.open("x-history-table=dbstep_history");
    CHECK(other->apply(with_row(up_step(1, "CREATE TABLE a (x int);")), kNone));
    CHECK(fx.query_int("SELECT count(*) FROM dbstep_history") == 1);
  }
  SUBCASE("every column plus one dbstep does not fill: the append fails in the transaction") {
    auto d = fx.open();
    REQUIRE(d->apply(with_row(up_step(1, "CREATE TABLE a (x int);")), kNone));
    fx.exec("ALTER TABLE schema_migrations_history ADD COLUMN reviewer text NOT NULL DEFAULT 'x'");
    fx.exec("ALTER TABLE schema_migrations_history ALTER COLUMN reviewer DROP DEFAULT");
    auto e = capture_error([&] {
      d->apply(with_row(up_step(2, "CREATE TABLE b (x int);")), DbState{1, false});
    });
    CHECK(e.code() == ErrorCode::kDatabase);
    CHECK(contains(e.what(),
                   "recording the history of migration 2 in "
                   "\"public\".\"schema_migrations_history\""));
    CHECK(contains(e.what(), "is not dbstep's history table"));
    CHECK(e.sqlstate == "23502");
    CHECK_FALSE(fx.table_exists("b"));
    CHECK(d->state() == DbState{1, false});
    CHECK(fx.query_int("SELECT count(*) FROM schema_migrations_history") == 1);
  }
  SUBCASE("a row dbstep cannot read names the table and the row") {
    auto d = fx.open();
    REQUIRE(d->apply(with_row(up_step(1, "SELECT 1;")), kNone));
    fx.exec("UPDATE schema_migrations_history SET kind = 'bogus'");
    auto e = capture_error([&] { d->history(); });
    CHECK(e.code() == ErrorCode::kDatabase);
    CHECK(contains(e.what(), "schema_migrations_history"));
    CHECK(contains(e.what(), "kind \"bogus\""));
  }
}

TEST_CASE("postgres: x-history-table follows the version table's name, schema and quoting") {
  PostgresFixture fx;
  SUBCASE("default: <version table>_history") {
    auto d = fx.open("x-migrations-table=my_versions");
    REQUIRE(d->apply(with_row(up_step(1, "SELECT 1;")), kNone));
    CHECK(fx.query_int("SELECT count(*) FROM my_versions_history") == 1);
    CHECK_FALSE(fx.table_exists("schema_migrations_history"));
  }
  SUBCASE("a name of its own, literally (a dot is part of the name)") {
    auto d = fx.open("x-history-table=audit.log");
    REQUIRE(d->apply(with_row(up_step(1, "SELECT 1;")), kNone));
    CHECK(fx.query_int("SELECT count(*) FROM public.\"audit.log\"") == 1);
    CHECK_FALSE(fx.table_exists("schema_migrations_history"));
    REQUIRE(d->history());
    CHECK(d->history()->size() == 1);
  }
  SUBCASE("quoted: the version table's schema, or one named") {
    fx.exec("CREATE SCHEMA migrate; CREATE SCHEMA audit");
    const std::string base =
        "x-migrations-table=%22migrate%22.%22sm%22&x-migrations-table-quoted=1";
    auto d = fx.open(base);
    REQUIRE(d->apply(with_row(up_step(1, "CREATE TABLE t1 (x int);")), kNone));
    CHECK(fx.query_int("SELECT count(*) FROM migrate.sm_history") == 1);
    auto named = fx.open(base + "&x-history-table=%22h%22");
    REQUIRE(named->apply(with_row(up_step(2, "CREATE TABLE t2 (x int);")), DbState{1, false}));
    CHECK(fx.query_int("SELECT count(*) FROM migrate.h") == 1);
    auto elsewhere = fx.open(base + "&x-history-table=%22audit%22.%22h%22");
    REQUIRE(elsewhere->apply(with_row(up_step(3, "CREATE TABLE t3 (x int);")), DbState{2, false}));
    CHECK(fx.query_int("SELECT count(*) FROM audit.h") == 1);
    // drop() removes the history table in the other schema with the version table.
    elsewhere->lock(1s);
    elsewhere->drop();
    elsewhere->unlock();
    CHECK_FALSE(fx.relation_exists("'audit.h'"));
    CHECK_FALSE(fx.relation_exists("'migrate.sm'"));
    CHECK_FALSE(elsewhere->history());
    auto e = capture_error([&] { fx.open(base + "&x-history-table=h"); });
    CHECK(e.code() == ErrorCode::kInvalidArgument);
    CHECK(contains(e.what(), "x-history-table must be quoted"));
  }
  SUBCASE("drop() removes it, and the next step creates it again") {
    auto d = fx.open();
    REQUIRE(d->apply(with_row(up_step(1, "SELECT 1;")), kNone));
    d->lock(1s);
    d->drop();
    d->unlock();
    CHECK_FALSE(fx.table_exists("schema_migrations_history"));
    REQUIRE(d->apply(with_row(up_step(1, "SELECT 1;")), kNone));
    CHECK(fx.query_int("SELECT count(*) FROM schema_migrations_history") == 1);
  }
}

TEST_CASE("postgres: history: a row id another connection took meanwhile is read again, once") {
  // The driver counts the history's ids itself after reading the largest once. Another
  // connection that appends rows without moving the version (record_state() with the same
  // state: a repair, a baseline row) makes that count stale: the step's row is refused by the
  // primary key, the step is rolled back and runs again with the id read anew.
  PostgresFixture fx;
  auto a = fx.open();
  REQUIRE(a->apply(with_row(up_step(1, "CREATE TABLE one (x int);")), kNone));
  auto b = fx.open();
  b->record_state({1, false}, {hand_row(1, HistoryKind::kRepaired)});
  REQUIRE(a->apply(with_row(up_step(2, "CREATE TABLE two (x int); INSERT INTO two VALUES (2);")),
                   DbState{1, false}));
  CHECK(a->state() == DbState{2, false});
  CHECK(fx.query_int("SELECT COUNT(*) FROM two") == 1);
  CHECK(fx.query("SELECT string_agg(id || ':' || version || ':' || kind, ',' ORDER BY id) FROM "
                 "schema_migrations_history") == "1:1:applied,2:1:repaired,3:2:applied");
  // And the count goes on from there.
  REQUIRE(a->apply(with_row(up_step(3, "SELECT 1;")), DbState{2, false}));
  CHECK(fx.query_int("SELECT max(id) FROM schema_migrations_history") == 4);
}

TEST_CASE("postgres: history: record_state writes the state and its rows in one transaction") {
  PostgresFixture fx;
  auto d = fx.open();
  d->lock(1s);
  d->record_state({3, false}, {hand_row(1, HistoryKind::kBaseline, "DROP TABLE one;"),
                               hand_row(2, HistoryKind::kBaseline),
                               hand_row(3, HistoryKind::kBaseline, "DROP TABLE three;")});
  CHECK(d->state() == DbState{3, false});
  auto rows = d->history();
  REQUIRE(rows);
  REQUIRE(rows->size() == 3);
  CHECK(rows->at(0).kind == HistoryKind::kBaseline);
  CHECK(rows->at(0).applied_by == "ops@host");
  CHECK(rows->at(2).duration_ms == 0);
  CHECK(is_utc_millis(rows->at(2).applied_at));
  CHECK(d->stored_down(3) == "DROP TABLE three;");
  // A row that cannot be written (a version past bigint) takes the state with it.
  auto e = capture_error([&] {
    d->record_state({4, false},
                    {hand_row(4, HistoryKind::kForced),
                     hand_row(std::numeric_limits<Version>::max(), HistoryKind::kForced)});
  });
  CHECK(e.code() == ErrorCode::kDatabase);
  CHECK(contains(e.what(), "recording the history of migration 18446744073709551615"));
  CHECK(d->state() == DbState{3, false});
  CHECK(d->history()->size() == 3);
  // A forced row does not count as a stored down SQL; the latest up row that does wins.
  d->record_state({3, false}, {hand_row(3, HistoryKind::kForced, "forced"),
                               hand_row(3, HistoryKind::kRepaired, "DROP TABLE three_v2;")});
  CHECK(d->stored_down(3) == "DROP TABLE three_v2;");
  // No rows: the state alone.
  d->record_state({}, {});
  CHECK(d->state() == kNone);
  CHECK(d->history()->size() == 5);
  d->unlock();
}

TEST_CASE("postgres: history: --single-transaction batches write each step's row, or none") {
  PostgresFixture fx;
  auto d = fx.open();
  std::vector<Step> steps = {
      with_row(up_step(1, "CREATE TABLE a (x int); SELECT pg_sleep(0.2);"), "DROP TABLE a;"),
      with_row(make_step(2, 2, "", "")), with_row(up_step(3, "SELECT 3;"))};
  auto feed = [&steps, i = std::size_t{0}]() mutable -> const Step* {
    return i < steps.size() ? &steps[i++] : nullptr;
  };
  REQUIRE(d->apply_batch(kNone, feed));
  auto rows = d->history();
  REQUIRE(rows);
  REQUIRE(rows->size() == 3);
  CHECK(rows->at(0).version == 1);
  CHECK(rows->at(1).version == 2);
  CHECK_FALSE(rows->at(1).checksum);
  CHECK(rows->at(2).version == 3);
  // Each step's own start and duration, not the batch's.
  CHECK(rows->at(0).duration_ms >= 200);
  CHECK(rows->at(2).duration_ms < rows->at(0).duration_ms);
  CHECK(rows->at(0).applied_at < rows->at(2).applied_at);
  CHECK(d->stored_down(1) == "DROP TABLE a;");
  // A failing batch leaves no row, and no history table when it would have created it.
  fx.exec("DROP TABLE schema_migrations_history");
  auto fresh = fx.open();
  std::vector<Step> bad = {with_row(up_step(4, "CREATE TABLE d (x int);")),
                           with_row(up_step(5, "SELECT * FROM nowhere;"))};
  auto bad_feed = [&bad, i = std::size_t{0}]() mutable -> const Step* {
    return i < bad.size() ? &bad[i++] : nullptr;
  };
  CHECK(capture_error([&] {
          fresh->apply_batch(DbState{3, false}, bad_feed);
        }).code() == ErrorCode::kMigrationFailed);
  CHECK_FALSE(fx.table_exists("schema_migrations_history"));
  CHECK_FALSE(fx.table_exists("d"));
  CHECK(fresh->state() == DbState{3, false});
}

namespace {

// A TCP relay between one client and the test server that counts round trips: how many times
// the client starts sending after the server has answered. A pipeline of queries sent together
// is one; a query sent after reading the previous one's result is another. With `drop_first`,
// the first connection is closed once the client has sent something (as a server does when
// authentication_timeout runs out), and the next one is relayed and counted.
class RoundTripCounter {
 public:
  explicit RoundTripCounter(int server_port, bool drop_first = false)
      : server_port_(server_port), drop_first_(drop_first) {
    listener_ = dbstep::testing::listen_on_loopback(2, port_);
    thread_ = std::thread([this] { relay(); });
  }
  ~RoundTripCounter() {
    stop_ = true;
    thread_.join();
    ::close(listener_);
  }
  RoundTripCounter(const RoundTripCounter&) = delete;
  RoundTripCounter& operator=(const RoundTripCounter&) = delete;

  int port() const { return port_; }
  // Connections the relay accepted.
  int accepted() const { return accepted_; }
  int round_trips() const { return round_trips_; }
  // Queries the client sent: Parse (extended protocol) and Query (simple) messages.
  int queries() const { return queries_; }
  // The text of the last Query (simple-query) message.
  std::string last_query() const {
    std::lock_guard<std::mutex> hold(mutex_);
    return last_query_;
  }

 private:
  // The next client, or -1 once stopped.
  int accept_one() {
    pollfd l{listener_, POLLIN, 0};
    while (!stop_ && ::poll(&l, 1, 50) <= 0) {
    }
    if (stop_) return -1;
    const int client = ::accept(listener_, nullptr, nullptr);
    if (client >= 0) ++accepted_;
    return client;
  }
  void relay() {
    int client = accept_one();
    if (client >= 0 && drop_first_) {
      pollfd first{client, POLLIN, 0};
      while (!stop_ && ::poll(&first, 1, 50) <= 0) {
      }
      ::close(client);
      client = accept_one();
    }
    if (client < 0) return;
    const int server = dbstep::testing::connect_to_loopback(server_port_);
    if (server >= 0) {
      bool answered = true;  // the client's first bytes start a round trip
      char buf[1 << 16];
      while (!stop_) {
        pollfd p[2] = {{client, POLLIN, 0}, {server, POLLIN, 0}};
        if (::poll(p, 2, 50) <= 0) continue;
        if (p[0].revents) {
          const ssize_t n = ::read(client, buf, sizeof buf);
          if (n <= 0 || ::write(server, buf, static_cast<std::size_t>(n)) != n) break;
          count_messages(buf, static_cast<std::size_t>(n));
          if (answered) ++round_trips_;
          answered = false;
        }
        if (p[1].revents) {
          const ssize_t n = ::read(server, buf, sizeof buf);
          if (n <= 0 || ::write(client, buf, static_cast<std::size_t>(n)) != n) break;
          answered = true;
        }
      }
      ::close(server);
    }
    ::close(client);
  }

  // The client's byte stream as protocol messages: the startup packet (length first, no type),
  // then a type byte and a length (counting itself) per message.
  void count_messages(const char* data, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
      const auto byte = static_cast<unsigned char>(data[i]);
      if (skip_ > 0) {
        --skip_;
        if (capturing_ && byte != 0) {
          std::lock_guard<std::mutex> hold(mutex_);
          last_query_ += static_cast<char>(byte);
        }
        if (skip_ == 0) capturing_ = false;
        continue;
      }
      if (!started_ || header_ > 0) {
        length_ = (length_ << 8) | byte;
        if (--header_left_ == 0) {
          // The startup packet's length counts its 4 bytes; a message's length too.
          skip_ = length_ - 4;
          started_ = true;
          header_ = 0;
          length_ = 0;
        }
        continue;
      }
      if (byte == 'P' || byte == 'Q') ++queries_;
      if (byte == 'Q') {
        capturing_ = true;
        std::lock_guard<std::mutex> hold(mutex_);
        last_query_.clear();
      }
      header_ = 1;
      header_left_ = 4;
    }
  }

  int server_port_;
  bool drop_first_;
  std::atomic<int> accepted_{0};
  bool started_ = false;  // the startup packet is past
  int header_ = 0;        // reading a message's length
  int header_left_ = 4;
  std::uint32_t length_ = 0;
  std::uint32_t skip_ = 0;
  std::atomic<int> queries_{0};
  bool capturing_ = false;  // inside a Query message's text
  mutable std::mutex mutex_;
  std::string last_query_;
  int listener_ = -1;
  int port_ = 0;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<int> round_trips_{0};
};

// `url` (scripts/pg-cluster.sh's form: postgres://user@127.0.0.1:PORT/db?...) on another port.
std::string through_port(std::string url, int port) {
  const auto at = url.find("@127.0.0.1:") + std::string("@127.0.0.1:").size();
  url.replace(at, url.find('/', at) - at, std::to_string(port));
  return url;
}

}  // namespace

TEST_CASE("postgres: a migration and its history row travel in one round trip") {
  PostgresFixture fx;
  RoundTripCounter relay(std::stoi(fx.query("SELECT current_setting('port')")));
  REQUIRE(fx.url.find("@127.0.0.1:") != std::string::npos);
  const std::string url = through_port(fx.url, relay.port());
  auto d = drivers::open_postgres(Url::parse(url));
  // The session's first write looks for the tables and creates them in round trips of their own.
  const int connected = relay.round_trips();
  REQUIRE(d->apply(with_row(up_step(1, "CREATE TABLE a (x int);")), kNone));
  CHECK(relay.round_trips() - connected >= 4);
  for (Version v = 2; v <= 6; ++v) {
    CAPTURE(v);
    const int before = relay.round_trips();
    REQUIRE(d->apply(with_row(up_step(v, "CREATE TABLE t" + std::to_string(v) +
                                             " (x int); INSERT INTO t" + std::to_string(v) +
                                             " VALUES (1), (2); CREATE INDEX ON t" +
                                             std::to_string(v) + " (x);"),
                              "DROP TABLE t" + std::to_string(v) + ";"),
                     DbState{v - 1, false}));
    CHECK(relay.round_trips() - before == 1);
  }
  CHECK(d->history()->size() == 6);
  // The bookkeeping of a migration: BEGIN, its statements, the history row, ONE statement for the
  // version row (the compare-and-swap), COMMIT, all in one simple-query message. No LOCK TABLE,
  // no state read.
  const int before = relay.queries();
  REQUIRE(d->apply(with_row(up_step(7, "CREATE TABLE t7 (x int); CREATE INDEX ON t7 (x);")),
                   DbState{6, false}));
  CHECK(relay.queries() - before == 1);
  const std::string sent = relay.last_query();
  CAPTURE(sent);
  std::vector<std::string> statements;
  for (std::size_t from = 0, end; (end = sent.find("\n;", from)) != std::string::npos; from = end + 2) {
    statements.push_back(sent.substr(from, end - from));
  }
  REQUIRE(statements.size() == 2 + 4);
  CHECK(statements[0] == "BEGIN");
  CHECK(statements[3].rfind("INSERT INTO", 0) == 0);
  CHECK(statements[5] == "COMMIT");
  CHECK(sent.find("LOCK TABLE") == std::string::npos);
  // Another process moved the version meanwhile: nothing applied, false, no error.
  fx.exec("UPDATE schema_migrations SET version = 9");
  CHECK_FALSE(d->apply(with_row(up_step(8, "CREATE TABLE t8 (x int);")), DbState{7, false}));
  CHECK_FALSE(fx.table_exists("t8"));
  CHECK(fx.query("SELECT version FROM schema_migrations") == "9");
  // ... also when the migration itself fails because of the other process (it made t7 already).
  fx.exec("UPDATE schema_migrations SET version = 10");
  CHECK_FALSE(d->apply(with_row(up_step(11, "CREATE TABLE t7 (x int);")), DbState{9, false}));
  CHECK(fx.query("SELECT version FROM schema_migrations") == "10");
  // The same failure with the state as planned is the migration's error.
  auto e = capture_error([&] { d->apply(with_row(up_step(11, "CREATE TABLE t7 (x int);")), DbState{10, false}); });
  CHECK(e.code() == ErrorCode::kMigrationFailed);
  CHECK(e.sqlstate == "42P07");
}

TEST_CASE("postgres: a driver that stays open goes on after another process dropped everything") {
  // The session made sure of its tables once; another process's drop removes them. The next step
  // finds the state moved (nothing applied), and the one after that, planned from nothing,
  // creates the tables again and applies.
  PostgresFixture fx;
  for (const char* params : {"", "x-lock-strategy=table"}) {
    CAPTURE(params);
    auto a = fx.open(params);
    a->lock(5s, nullptr);
    REQUIRE(a->apply(with_row(up_step(1, "CREATE TABLE one (x int);")), kNone));
    REQUIRE(a->apply(with_row(up_step(2, "CREATE TABLE two (x int);")), DbState{1, false}));
    REQUIRE(a->apply(with_row(up_step(3, "CREATE TABLE three (x int);")), DbState{2, false}));
    a->unlock();
    fx.open()->drop();
    a->lock(5s, nullptr);
    CHECK_FALSE(a->apply(with_row(up_step(4, "CREATE TABLE four (x int);")), DbState{3, false}));
    CHECK_FALSE(fx.table_exists("four"));
    CHECK(a->state() == kNone);
    REQUIRE(a->apply(with_row(up_step(1, "CREATE TABLE one (x int);")), kNone));
    REQUIRE(a->apply(with_row(up_step(2, "CREATE TABLE two (x int);")), DbState{1, false}));
    CHECK(a->state() == DbState{2, false});
    CHECK(fx.query("SELECT string_agg(version::text, ',' ORDER BY id) FROM "
                   "schema_migrations_history") == "1,2");
    // Back to nothing applied, then dropped again: a step planned from nothing, whose state the
    // drop did not move, makes sure of the tables anew.
    REQUIRE(a->apply(with_row(make_step(2, 1, "2_x.down.sql", "DROP TABLE two;", Direction::kDown)),
                     DbState{2, false}));
    REQUIRE(a->apply(with_row(make_step(1, std::nullopt, "1_x.down.sql", "DROP TABLE one;",
                                        Direction::kDown)),
                     DbState{1, false}));
    a->unlock();
    fx.open()->drop();
    a->lock(5s, nullptr);
    REQUIRE(a->apply(with_row(up_step(1, "CREATE TABLE one (x int);")), kNone));
    CHECK(a->state() == DbState{1, false});
    // Writes of the state alone (force, baseline) make sure of the table anew as well.
    a->unlock();
    fx.open()->drop();
    a->lock(5s, nullptr);
    a->set_state(DbState{5, false});
    CHECK(a->state() == DbState{5, false});
    a->unlock();
    fx.open()->drop();
  }
}

TEST_CASE("postgres: a migration that removes dbstep's own table fails once, and runs once") {
  // The bookkeeping then finds the table missing; after the rollback it is there again, so the
  // failure is the migration's own: not retried, the file not run a second time.
  PostgresFixture fx;
  for (const char* params : {"", "x-lock-strategy=table"}) {
    CAPTURE(params);
    fx.exec("CREATE SEQUENCE runs");
    auto a = fx.open(params);
    a->lock(5s, nullptr);
    REQUIRE(a->apply(with_row(up_step(1, "CREATE TABLE one (x int);")), kNone));
    REQUIRE(a->apply(with_row(up_step(2, "CREATE TABLE two (x int);")), DbState{1, false}));
    auto e = capture_error([&] {
      a->apply(with_row(up_step(3, "SELECT nextval('runs'); DROP TABLE schema_migrations_history;")),
               DbState{2, false});
    });
    CHECK(e.sqlstate == "42P01");
    CHECK(fx.query("SELECT last_value FROM runs") == "1");
    CHECK(a->state() == DbState{2, false});
    CHECK(fx.table_exists("schema_migrations_history"));
    REQUIRE(a->apply(with_row(up_step(3, "CREATE TABLE three (x int);")), DbState{2, false}));
    a->unlock();
    fx.open()->drop();
  }
}

TEST_CASE("postgres: with the advisory lock on a direct connection, the bookkeeping is prepared once") {
  // The history INSERT and the version write's MERGE are prepared on the session (PREPARE, in a
  // round trip before the first migration after the session's first write) and each migration
  // sends EXECUTE. A migration sees what its session has prepared through pg_prepared_statements.
  PostgresFixture fx;
  auto prepared_seen_by = [&](Driver& d, Version v, const std::string& table) {
    REQUIRE(d.apply(with_row(up_step(v, "CREATE TABLE " + table +
                                            " AS SELECT name FROM pg_prepared_statements;")),
                    DbState{v - 1, false}));
    return fx.query("SELECT coalesce(string_agg(name, ',' ORDER BY name), '') FROM " + table);
  };
  auto d = fx.open();
  d->lock(5s, nullptr);
  REQUIRE(d->apply(with_row(up_step(1, "CREATE TABLE one (x int);")), kNone));
  CHECK(prepared_seen_by(*d, 2, "seen2") == "dbstep_history_insert_0,dbstep_version_write_0");
  CHECK(prepared_seen_by(*d, 3, "seen3") == "dbstep_history_insert_0,dbstep_version_write_0");

  // The compare-and-swap holds through EXECUTE: another process moved the version meanwhile,
  // and the step runs nothing.
  fx.exec("UPDATE schema_migrations SET version = 9");
  CHECK_FALSE(d->apply(with_row(up_step(4, "CREATE TABLE four (x int);")), DbState{3, false}));
  CHECK_FALSE(fx.table_exists("four"));
  CHECK(fx.query("SELECT version FROM schema_migrations") == "9");

  // A file that removes prepared statements runs with the bookkeeping as text; the next one
  // prepares it again, under new names.
  REQUIRE(d->apply(with_row(up_step(10, "DEALLOCATE ALL; CREATE TABLE ten (x int);")),
                   DbState{9, false}));
  CHECK(prepared_seen_by(*d, 11, "seen11") == "dbstep_history_insert_1,dbstep_version_write_1");

  // A function the file calls may remove them where no file says DEALLOCATE: the step fails on
  // the missing statement, rolls back, and runs again with the bookkeeping as text.
  REQUIRE(d->apply(with_row(up_step(12, "CREATE FUNCTION tidy_session() RETURNS void LANGUAGE "
                                        "plpgsql AS $$ BEGIN EXECUTE 'DEALL' || 'OCATE ALL'; "
                                        "END $$;")),
                   DbState{11, false}));
  REQUIRE(d->apply(with_row(up_step(13, "SELECT tidy_session(); CREATE TABLE thirteen (x int);")),
                   DbState{12, false}));
  CHECK(fx.table_exists("thirteen"));
  CHECK(prepared_seen_by(*d, 14, "seen14") == "dbstep_history_insert_2,dbstep_version_write_2");

  // Down steps use them too; every row is whole.
  REQUIRE(d->apply(with_row(make_step(14, 13, "14_x.down.sql", "DROP TABLE seen14;",
                                      Direction::kDown)),
                   DbState{14, false}));
  CHECK(d->state() == DbState{13, false});
  CHECK_FALSE(fx.table_exists("seen14"));
  CHECK(fx.query("SELECT string_agg(id || ':' || version || ':' || direction, ',' ORDER BY id) "
                 "FROM schema_migrations_history") ==
        "1:1:up,2:2:up,3:3:up,4:10:up,5:11:up,6:12:up,7:13:up,8:14:up,9:14:down");
  CHECK(fx.query_int("SELECT count(*) FROM schema_migrations_history WHERE applied_at IS NULL OR "
                     "duration_ms < 0 OR checksum IS NULL OR applied_by = ''") == 0);
  d->unlock();

  // Without the lock, or with the table strategy (a pooler in transaction mode may sit in
  // between), the session is not known to be the driver's: nothing is prepared.
  auto t = fx.open("x-lock-strategy=table");
  t->lock(5s, nullptr);
  REQUIRE(t->apply(with_row(up_step(15, "SELECT 1;")), DbState{13, false}));
  CHECK(prepared_seen_by(*t, 16, "seen16") == "");
  t->unlock();
  auto u = fx.open();
  REQUIRE(u->apply(with_row(up_step(17, "SELECT 1;")), DbState{16, false}));
  CHECK(prepared_seen_by(*u, 18, "seen18") == "");
}

TEST_CASE("postgres: a role with golang-migrate's rights on the version table migrates (no UPDATE needed)") {
  // golang-migrate writes the version row with DELETE and INSERT; the MERGE form needs UPDATE.
  PostgresFixture fx;
  fx.open()->apply(with_row(up_step(1, "CREATE TABLE owned_by_admin (x int);")), kNone);
  const std::string role = random_name("mig_");
  fx.exec("CREATE ROLE " + role + " LOGIN");
  fx.exec("GRANT SELECT, INSERT, DELETE ON schema_migrations TO " + role);
  fx.exec("GRANT SELECT, INSERT ON schema_migrations_history TO " + role);
  fx.exec("GRANT CREATE ON SCHEMA public TO " + role);
  std::string url = fx.url;
  url.replace(url.find("postgres@"), std::string("postgres@").size(), role + "@");
  {
    auto d = drivers::open_postgres(Url::parse(url));
    CHECK(d->apply(with_row(up_step(2, "CREATE TABLE t2 (x int);")), DbState{1, false}));
    CHECK(d->apply(with_row(up_step(3, "CREATE TABLE t3 (x int);")), DbState{2, false}));
    CHECK(d->state() == DbState{3, false});
    // The compare-and-swap still holds in the DELETE and INSERT form.
    CHECK_FALSE(d->apply(with_row(up_step(4, "CREATE TABLE t4 (x int);")), DbState{2, false}));
    CHECK_FALSE(fx.relation_exists("'t4'"));
  }
  {
    // With the lock held the bookkeeping is prepared, but never the MERGE it may not run (nor
    // on a server before 15, which has none): the version write stays DELETE and INSERT.
    auto d = drivers::open_postgres(Url::parse(url));
    d->lock(5s, nullptr);
    CHECK(d->apply(with_row(up_step(4, "CREATE TABLE t4 (x int);")), DbState{3, false}));
    CHECK(d->apply(with_row(up_step(5, "CREATE TABLE seen5 AS SELECT name FROM "
                                       "pg_prepared_statements;")),
                   DbState{4, false}));
    CHECK(d->apply(with_row(up_step(6, "CREATE TABLE t6 (x int);")), DbState{5, false}));
    CHECK(d->state() == DbState{6, false});
    CHECK(fx.query("SELECT string_agg(name, ',') FROM seen5") == "dbstep_history_insert_0");
    d->unlock();
  }
  fx.exec("DROP OWNED BY " + role);
  fx.exec("DROP ROLE " + role);
}

TEST_CASE("postgres: on a SQL_ASCII or LATIN1 database a failure still names its statement, line and column") {
  // The one-message transport maps positions counted in UTF-8 characters; on another server
  // encoding the statements travel one query each, as before.
  for (const char* encoding : {"SQL_ASCII", "LATIN1"}) {
    CAPTURE(encoding);
    const std::string admin = postgres_server_url();
    const std::string db = random_name("enc_");
    dbstep::testing::pg_exec(admin, "CREATE DATABASE " + db + " ENCODING '" + encoding +
                                        "' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0");
    {
      auto d = drivers::open_postgres(Url::parse(url_with_database(admin, db)));
      CHECK(d->apply(up_step(1, "CREATE TABLE a (x text);"), kNone));
      auto e = capture_error([&] {
        d->apply(up_step(2, "SELECT 'é';\nSELECT 1,\n  nosuchcol;\n"), DbState{1, false});
      });
      CHECK(e.code() == ErrorCode::kMigrationFailed);
      CHECK(e.line == 3);
      CHECK(e.column == 3);
      CHECK(contains(e.what(), "nosuchcol"));
      CHECK(d->state() == DbState{1, false});
    }
    dbstep::testing::pg_exec(admin, "DROP DATABASE IF EXISTS " + db + " WITH (FORCE)");
  }
}

TEST_CASE("postgres: started, a connection sends its startup before the caller works; state and marks in one round trip") {
  PostgresFixture fx;
  REQUIRE(drivers::open_postgres(Url::parse(fx.url))->apply(up_step(1, "CREATE TABLE a (x int);"),
                                                            kNone));
  RoundTripCounter second(std::stoi(fx.query("SELECT current_setting('port')")));
  PendingDriver pending = drivers::start_postgres(Url::parse(through_port(fx.url, second.port())));
  // The startup packet is out (the server starts the session meanwhile); no query yet.
  for (int i = 0; i < 200 && second.round_trips() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  CHECK(second.round_trips() == 1);
  CHECK(second.queries() == 0);
  std::unique_ptr<Driver> d = pending();
  const int queries = second.queries();
  const int trips = second.round_trips();
  const Driver::StateAndMarks read = d->state_and_marks();
  CHECK(read.state == DbState{1, false});
  CHECK_FALSE(read.marks.has_value());  // no history was written
  CHECK(second.queries() - queries == 1);
  CHECK(second.round_trips() - trips == 1);
  const std::string sent = second.last_query();
  CHECK(contains(sent, "schema_migrations"));
  CHECK(contains(sent, "schema_migrations_history"));

  // The started half and the finishing half fail as open_postgres() does.
  auto e = capture_error(
      [&] { drivers::start_postgres(Url::parse("postgres://postgres@127.0.0.1:1/db?sslmode=disable"))(); });
  CHECK(e.code() == ErrorCode::kDatabase);
  CHECK(contains(e.what(), "cannot connect to PostgreSQL at postgres://postgres@127.0.0.1:1/db"));
  CHECK(capture_error([&] { drivers::start_postgres(Url::parse(fx.url + "&x-lock-timeout=-5")); })
            .code() == ErrorCode::kInvalidArgument);
}

TEST_CASE("postgres: connect_timeout still bounds a connection that is started early") {
  // A listener that never answers: the kernel completes the TCP handshake, libpq sends its
  // startup packet and waits for a reply that never comes.
  int port = 0;
  const int silent = dbstep::testing::listen_on_loopback(4, port);
  const std::string url = "postgres://postgres@127.0.0.1:" + std::to_string(port) +
                          "/db?sslmode=disable&connect_timeout=2";
  auto outcome = std::async(std::launch::async, [&] {
    return capture_error([&] { drivers::start_postgres(Url::parse(url))(); });
  });
  if (outcome.wait_for(std::chrono::seconds(30)) != std::future_status::ready) {
    // libpq's timeout was lost: the wait would never end, and neither would this test.
    std::fprintf(stderr, "connect_timeout=2 did not end the connection attempt in 30 s\n");
    std::_Exit(1);
  }
  const Error e = outcome.get();
  CHECK(e.code() == ErrorCode::kDatabase);
  CHECK(contains(e.what(), "timeout"));
  ::close(silent);
}

TEST_CASE("postgres: a failed read of several queries leaves the session idle, with nothing to cancel") {
  PostgresFixture fx;
  drivers::pg::Connection c(Url::parse(fx.url));
  int busy = 0;
  for (int i = 0; i < 50; ++i) {
    // The first fails (nothing after it runs), the second fails, both succeed.
    auto first = c.try_exec_each({"SELECT * FROM no_such_table_0", "SELECT 1"});
    REQUIRE(first.size() == 1);  // the failure, and nothing after it
    REQUIRE(first[0].second.has_value());
    CHECK(first[0].second->sqlstate == "42P01");
    if (PQtransactionStatus(c.raw()) != PQTRANS_IDLE) ++busy;
    auto second = c.try_exec_each({"SELECT 1", "SELECT * FROM no_such_table_1"});
    REQUIRE(second.size() == 2);
    REQUIRE_FALSE(second[0].second.has_value());
    CHECK(second[0].first[0][0].as<int>() == 1);
    CHECK(second[1].second.has_value());
    if (PQtransactionStatus(c.raw()) != PQTRANS_IDLE) ++busy;
    auto both = c.try_exec_each({"SELECT 1", "SELECT 2"});
    REQUIRE(both.size() == 2);
    CHECK_FALSE(both[0].second.has_value());
    REQUIRE_FALSE(both[1].second.has_value());
    CHECK(both[1].first[0][0].as<int>() == 2);
    if (PQtransactionStatus(c.raw()) != PQTRANS_IDLE) ++busy;
  }
  // Busy, the next ROLLBACK would be refused or warned about, and libpqxx's pipeline would have
  // sent a cancel request (a connection of its own) for the query it still waited for.
  CHECK(busy == 0);
}

TEST_CASE("postgres: a started connection the server ended during a long wait is made once more") {
  PostgresFixture fx;
  const int port = std::stoi(fx.query("SELECT current_setting('port')"));
  {
    // Ended at once: that is the answer, reported, and no second connection is tried.
    RoundTripCounter drop(port, /*drop_first=*/true);
    PendingDriver pending = drivers::start_postgres(Url::parse(through_port(fx.url, drop.port())));
    auto e = capture_error([&] { pending(); });
    CHECK(e.code() == ErrorCode::kDatabase);
    CHECK(contains(e.what(), "cannot connect to PostgreSQL"));
    CHECK(drop.accepted() == 1);
  }
  {
    // Ended while the caller worked for more than a second (authentication_timeout is 1 s at
    // least): connected again, with libpq's blocking connect, and the driver works.
    RoundTripCounter drop(port, /*drop_first=*/true);
    PendingDriver pending = drivers::start_postgres(Url::parse(through_port(fx.url, drop.port())));
    std::this_thread::sleep_for(std::chrono::milliseconds(1200));
    std::unique_ptr<Driver> d = pending();
    CHECK(drop.accepted() == 2);
    CHECK(d->state() == kNone);
    CHECK(d->apply(up_step(1, "CREATE TABLE again (x int);"), kNone));
    CHECK(fx.table_exists("again"));
  }
}
