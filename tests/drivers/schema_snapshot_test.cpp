// Schema snapshots (core/schema_snapshot.hpp, Driver::schema_snapshot) and verify
// (core/verify.hpp) through the library, on real SQLite files.

#include "tests/drivers/schema_test_support.hpp"

using namespace dbstep;
using namespace dbstep::testing::schema;

TEST_CASE("schema snapshot: diff_snapshots prints a unified diff, nothing for equal texts") {
  CHECK(diff_snapshots("a\nb\n", "a\nb\n", "x", "y").empty());
  const std::string d = diff_snapshots("t\n  a\n  b\n  c\n", "t\n  a\n  B\n  c\n  d\n", "x", "y");
  CHECK(d == "--- x\n+++ y\n@@ -1,4 +1,5 @@\n t\n   a\n-  b\n+  B\n   c\n+  d\n");
}

TEST_CASE("schema snapshot: a file that is not a dump is refused by name") {
  CHECK_THROWS_WITH_AS(snapshot_from_dump("CREATE TABLE t (a int);\n", "notes.sql"),
                       doctest::Contains("notes.sql is not a dbstep schema dump"), Error);
  CHECK(snapshot_from_dump(std::string(kSchemaDumpHeader) + "\r\ndialect x\r\n", "f") ==
        "dialect x\n");
}

TEST_CASE("schema snapshot sqlite: stable, and independent of the order objects were made in") {
  TempDir dir;
  auto a = sqlite_db(dir, "a");
  auto b = sqlite_db(dir, "b");
  check_order_independent(
      *a, *b,
      {"CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE)",
       "CREATE TABLE posts (id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users (id), "
       "body TEXT DEFAULT '')",
       "CREATE INDEX posts_user ON posts (user_id)",
       "CREATE VIEW recent AS SELECT id FROM posts",
       "CREATE TRIGGER posts_ai AFTER INSERT ON posts BEGIN SELECT 1; END"},
      {1, 0, 2, 4, 3});
  // dbstep's own tables are not part of it.
  CHECK(snapshot(*a).find("schema_migrations") == std::string::npos);
}

TEST_CASE("schema snapshot sqlite: diff finds an added column, a changed default, a dropped index, "
          "a changed trigger") {
  TempDir dir;
  auto db = sqlite_db(dir, "d");
  db->exec("CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT DEFAULT 'x', b INTEGER);"
           "CREATE INDEX t_a ON t (a);"
           "CREATE TRIGGER t_ai AFTER INSERT ON t BEGIN SELECT 1; END;");
  auto driver = builtin().open_driver(db->url);
  const std::string dump = schema_dump(*driver);
  CHECK(compare_with_dump(*driver, dump, "saved.schema").matches());
  db->exec("ALTER TABLE t ADD COLUMN c TEXT;"
           "DROP INDEX t_a;"
           "DROP TRIGGER t_ai; CREATE TRIGGER t_ai AFTER INSERT ON t BEGIN SELECT 2; END;");
  auto drift = compare_with_dump(*builtin().open_driver(db->url), dump, "saved.schema");
  REQUIRE_FALSE(drift.matches());
  const std::string& d = drift.difference;
  CHECK(d.find("--- saved.schema (saved)") != std::string::npos);
  CHECK(d.find("+  column c TEXT") != std::string::npos);
  CHECK(d.find("-index t_a on t") != std::string::npos);
  CHECK(d.find("-  sql CREATE TRIGGER t_ai AFTER INSERT ON t BEGIN SELECT 1; END") !=
        std::string::npos);
  CHECK(d.find("+  sql CREATE TRIGGER t_ai AFTER INSERT ON t BEGIN SELECT 2; END") !=
        std::string::npos);

  // A changed default: SQLite keeps it in the table's SQL, so the table is made again.
  TempDir dir2;
  auto e = sqlite_db(dir2, "e");
  e->exec("CREATE TABLE t (a TEXT DEFAULT 'x')");
  const std::string before = snapshot(*e);
  e->exec("DROP TABLE t; CREATE TABLE t (a TEXT DEFAULT 'y')");
  const std::string d2 = diff_snapshots(before, snapshot(*e), "a", "b");
  CHECK(d2.find("-  column a TEXT default 'x'") != std::string::npos);
  CHECK(d2.find("+  column a TEXT default 'y'") != std::string::npos);
}

TEST_CASE("verify sqlite: fixtures that fail each way, and sets that pass") {
  TempDir dir;
  const std::string url = "sqlite://" + (dir / "never-touched.db").string();
  check_fixtures("sqlite", url);
  // -d is only the place the scratch database goes beside: it is not even created.
  CHECK_FALSE(std::filesystem::exists(dir / "never-touched.db"));
}

TEST_CASE("verify sqlite: --scratch must be empty and is left empty") {
  TempDir dir;
  auto scratch = sqlite_db(dir, "scratch");
  scratch->exec("CREATE TABLE mine (a INT)");
  CHECK_THROWS_WITH_AS(verify(builtin(), "sqlite://x.db", kData + "/verify/sqlite/pass", {},
                              scratch->url),
                       doctest::Contains("is not empty (it holds table mine)"), Error);
  CHECK(snapshot(*scratch).find("table mine") != std::string::npos);  // untouched
  auto empty = sqlite_db(dir, "empty");
  auto r = verify(builtin(), "sqlite://x.db", kData + "/verify/sqlite/pass", {}, empty->url);
  CHECK(r.ok());
  CHECK(snapshot(*empty) == "dialect sqlite\n");
}

