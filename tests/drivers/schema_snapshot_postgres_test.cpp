// Schema snapshots and verify through the library on the real PostgreSQL server
// (DBSTEP_TEST_POSTGRES_URL; without it these cases fail, never skip).

#include "tests/drivers/schema_test_support.hpp"

using namespace dbstep;
using namespace dbstep::testing::schema;

TEST_CASE("schema snapshot postgres: stable, and independent of the order objects were made in") {
  auto a = pg_db();
  auto b = pg_db();
  check_order_independent(
      *a, *b,
      {"CREATE TYPE mood AS ENUM ('sad', 'ok')",
       "CREATE TABLE users (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, email text "
       "NOT NULL UNIQUE, m mood)",
       "CREATE TABLE posts (id serial PRIMARY KEY, user_id bigint REFERENCES users (id), "
       "body text DEFAULT '' COLLATE \"C\")",
       "CREATE INDEX posts_user ON posts (user_id)",
       "CREATE VIEW recent AS SELECT id FROM posts",
       "CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$",
       "CREATE TRIGGER posts_bi BEFORE INSERT ON posts FOR EACH ROW EXECUTE FUNCTION f()",
       "COMMENT ON TABLE posts IS 'what people write'",
       "CREATE SEQUENCE tickets START 7"},
      {8, 5, 0, 1, 2, 6, 3, 7, 4});
  // Dropped columns leave no trace: a column added and dropped gives the same text.
  const std::string before = snapshot(*a);
  a->exec("ALTER TABLE users ADD COLUMN tmp int; ALTER TABLE users DROP COLUMN tmp");
  CHECK(snapshot(*a) == before);
}

TEST_CASE("schema snapshot postgres: diff finds an added column, a changed default, a dropped "
          "index, a changed function body") {
  auto db = pg_db();
  db->exec("CREATE TABLE t (id int PRIMARY KEY, a text DEFAULT 'x');"
           "CREATE INDEX t_a ON t (a);"
           "CREATE FUNCTION answer() RETURNS int LANGUAGE sql AS $$ SELECT 41 $$;");
  const std::string dump = schema_dump(*builtin().open_driver(db->url));
  db->exec("ALTER TABLE t ADD COLUMN c int; ALTER TABLE t ALTER COLUMN a SET DEFAULT 'y';"
           "DROP INDEX t_a;"
           "CREATE OR REPLACE FUNCTION answer() RETURNS int LANGUAGE sql AS $$ SELECT 42 $$;");
  auto drift = compare_with_dump(*builtin().open_driver(db->url), dump, "prod.schema");
  REQUIRE_FALSE(drift.matches());
  const std::string& d = drift.difference;
  CHECK(d.find("+  column c integer") != std::string::npos);
  CHECK(d.find("-  column a text default 'x'::text") != std::string::npos);
  CHECK(d.find("+  column a text default 'y'::text") != std::string::npos);
  CHECK(d.find("-  index t_a CREATE INDEX t_a ON") != std::string::npos);
  CHECK(changed_line(d, '-', "SELECT 41"));
  CHECK(changed_line(d, '+', "SELECT 42"));
}

TEST_CASE("verify postgres: fixtures that fail each way, and sets that pass") {
  check_fixtures("postgres", postgres_server_url());
}
