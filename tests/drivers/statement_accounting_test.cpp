// Statement accounting (issue 9): for any file, the statements a driver executes plus the parts it
// skips cover the file exactly, and every skipped part is blank; otherwise the migration fails.
// The same table of tricky inputs runs through core's check, the PostgreSQL split (pure, no
// server) and the SQLite walk (on an in-memory database). The drivers' conformance and e2e
// suites check the same inputs end to end against real databases.

#include <doctest/doctest.h>
#include <sqlite3.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/statement_accounting.hpp"
#include "drivers/postgres/statements.hpp"
#include "drivers/sqlite/statements.hpp"
#include "tests/drivers/conformance.hpp"

namespace {

using dbstep::Error;
using dbstep::ErrorCode;
using dbstep::SqlDialect;
using dbstep::TextSpan;
using dbstep::testing::capture_error;
using dbstep::testing::up_step;

std::string text_of(const std::string& sql, const TextSpan& s) { return sql.substr(s.offset, s.length); }

// Trimmed statement texts, for comparing splits.
std::string trimmed(std::string s) {
  auto b = s.find_first_not_of(" \t\r\n;");
  auto e = s.find_last_not_of(" \t\r\n;");
  return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}

struct Case {
  const char* name;
  std::string sql;
  // PostgreSQL: the statements sent, trimmed; empty with `pg_error` set when analyze refuses.
  std::vector<std::string> pg_statements;
  bool pg_error = false;
};

std::vector<Case> tricky_inputs() {
  using namespace std::string_literals;
  return {
      {"plain", "CREATE TABLE a (i int);\nCREATE TABLE b (i int);\n",
       {"CREATE TABLE a (i int)", "CREATE TABLE b (i int)"}},
      {"keyword-less statement after a good one (typo)", "CREATE TABLE a (i int);\nTRUNCAT a;\n",
       {"CREATE TABLE a (i int)", "TRUNCAT a"}},
      {"keyword-less text alone", "xyzzy;", {"xyzzy"}},
      {"keyword-less text between good ones", "CREATE TABLE a (i int);; ;xyzzy; CREATE TABLE b (i int)",
       {"CREATE TABLE a (i int)", "xyzzy", "CREATE TABLE b (i int)"}},
      {"invalid UTF-8 statement", "CREATE TABLE a (i int);\n\xff\xfe;\n",
       {"CREATE TABLE a (i int)", "\xff\xfe"}},
      {"invalid UTF-8 in a string", "INSERT INTO a VALUES ('caf\xe9');", {"INSERT INTO a VALUES ('caf\xe9')"}},
      {"NUL byte in the middle", "CREATE TABLE n1 (i int);\n\0CREATE TABLE n2 (i int);"s, {}, true},
      {"NUL byte first", "\0CREATE TABLE n2 (i int);"s, {}, true},
      // Where even PostgreSQL's lexer gives up, the whole file goes to the server as one text
      // (inside dbstep's transaction), and the server reports the error.
      {"unterminated string", "CREATE TABLE a (i int);\nINSERT INTO a VALUES ('x);\n",
       {"CREATE TABLE a (i int);\nINSERT INTO a VALUES ('x)"}},
      {"unterminated block comment", "CREATE TABLE a (i int);\n/* never closed\nCREATE TABLE b (i int);\n",
       {"CREATE TABLE a (i int);\n/* never closed\nCREATE TABLE b (i int)"}},
      {"comment ended by CR only (PostgreSQL)", "CREATE TABLE a (i int);\n-- note\rxyzzy;\n",
       {"CREATE TABLE a (i int)", "xyzzy"}},
      {"dollar-quoted body with semicolons",
       "CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; SELECT 2; $$ LANGUAGE sql;\nSELECT 1;",
       {"CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; SELECT 2; $$ LANGUAGE sql", "SELECT 1"}},
      {"CRLF line endings", "CREATE TABLE a (i int);\r\nCREATE TABLE b (i int);\r\n",
       {"CREATE TABLE a (i int)", "CREATE TABLE b (i int)"}},
      {"byte-order mark", "\xEF\xBB\xBF" "CREATE TABLE a (i int);", {"CREATE TABLE a (i int)"}},
      {"trailing text without a semicolon", "CREATE TABLE a (i int);\nCREATE TABLE b (i int)",
       {"CREATE TABLE a (i int)", "CREATE TABLE b (i int)"}},
      {"trailing keyword-less text without a semicolon", "CREATE TABLE a (i int);\nxyzzy",
       {"CREATE TABLE a (i int)", "xyzzy"}},
      {"only comments and semicolons", "-- nothing\n/* at all */ ;;\n", {}},
      {"nested block comment (PostgreSQL)", "/* a /* b */ c */ SELECT 1;", {"/* a /* b */ c */ SELECT 1"}},
      {"empty file", "", {}},
      // Found by fuzz_postgres_split: a second byte-order mark is text, for the server to judge.
      {"two byte-order marks", "\xEF\xBB\xBF\xEF\xBB\xBF\n", {"\xEF\xBB\xBF"}},
  };
}

}  // namespace

TEST_CASE("accounting: first_unaccounted reads blank text as each database's lexer does") {
  const std::string sql = "SELECT 1; -- c\n /* d */ ; SELECT 2";
  std::vector<TextSpan> both = {{0, 8}, {26, 8}};
  CHECK_FALSE(dbstep::first_unaccounted(sql, both, SqlDialect::kSqlite));
  CHECK_FALSE(dbstep::first_unaccounted(sql, both, SqlDialect::kPostgres));
  // Leaving out a statement is caught at its first byte.
  std::vector<TextSpan> first_only = {{0, 8}};
  CHECK(dbstep::first_unaccounted(sql, first_only, SqlDialect::kSqlite) == 26u);
  // Overlapping or out-of-range spans are reported, never trusted.
  std::vector<TextSpan> overlap = {{0, 10}, {5, 5}};
  CHECK(dbstep::first_unaccounted(sql, overlap, SqlDialect::kSqlite) == 5u);
  std::vector<TextSpan> past_end = {{0, 100}};
  CHECK(dbstep::first_unaccounted(sql, past_end, SqlDialect::kSqlite) == 0u);

  // "--" ends at "\r" for PostgreSQL, only at "\n" for SQLite.
  const std::string cr = "-- note\rxyzzy";
  CHECK_FALSE(dbstep::first_unaccounted(cr, {}, SqlDialect::kSqlite));
  CHECK(dbstep::first_unaccounted(cr, {}, SqlDialect::kPostgres) == 8u);
  // PostgreSQL nests block comments, SQLite does not.
  CHECK(dbstep::is_blank("/* a /* b */ c */", SqlDialect::kPostgres));
  CHECK_FALSE(dbstep::is_blank("/* a /* b */ c */", SqlDialect::kSqlite));
  CHECK_FALSE(dbstep::is_blank("/* open", SqlDialect::kPostgres));
  // An unterminated one is never blank: SQLite would let it swallow the rest of the file.
  CHECK_FALSE(dbstep::is_blank("/* open", SqlDialect::kSqlite));
  // A byte-order mark counts as blank only at the very start.
  CHECK(dbstep::first_unaccounted("\xEF\xBB\xBF -- x\n", {}, SqlDialect::kSqlite) == std::nullopt);
  CHECK_FALSE(dbstep::is_blank("\xEF\xBB\xBF -- x\n", SqlDialect::kSqlite));  // a piece of a file
  CHECK(dbstep::first_unaccounted("; \xEF\xBB\xBF", {}, SqlDialect::kSqlite) == 2u);
  // A NUL byte is never blank.
  CHECK_FALSE(dbstep::is_blank(std::string_view("\0", 1), SqlDialect::kSqlite));
}

TEST_CASE("accounting: the PostgreSQL split accounts for every byte of tricky files") {
  for (const Case& c : tricky_inputs()) {
    const std::string name = c.name;
    CAPTURE(name);
    const auto step = up_step(3, c.sql);
    if (c.pg_error) {
      Error e = capture_error([&] { dbstep::drivers::pg::analyze(step); });
      CHECK(e.code() == ErrorCode::kMigrationFailed);
      CHECK(e.file == "3_test.up.sql");
      CHECK(std::string(e.what()).find("NUL byte at line") != std::string::npos);
      continue;
    }
    const auto script = dbstep::drivers::pg::analyze(step);
    const auto spans = dbstep::drivers::pg::accounted_spans(script);
    CHECK_FALSE(dbstep::first_unaccounted(c.sql, spans, SqlDialect::kPostgres));
    std::vector<std::string> sent;
    for (const auto& st : script.statements) sent.push_back(trimmed(text_of(c.sql, st.span())));
    std::string shown;
    for (const auto& t : sent) shown += "[" + t + "] ";
    CAPTURE(shown);
    CHECK(sent == c.pg_statements);
  }
}

TEST_CASE("accounting: a PostgreSQL BEGIN wrapper is accounted for, a BEGIN without COMMIT refused") {
  const std::string wrapped = "BEGIN;\nCREATE TABLE a (i int);\nCOMMIT;\n";
  const auto script = dbstep::drivers::pg::analyze(up_step(1, wrapped));
  CHECK(script.statements.size() == 1);
  CHECK(script.absorbed.size() == 2);
  CHECK_FALSE(script.outside_transaction);
  CHECK_FALSE(dbstep::first_unaccounted(wrapped, dbstep::drivers::pg::accounted_spans(script),
                                        SqlDialect::kPostgres));

  Error e = capture_error([] {
    dbstep::drivers::pg::analyze(up_step(2, "-- header\nBEGIN;\nCREATE TABLE a (i int);\n"));
  });
  CHECK(e.code() == ErrorCode::kMigrationFailed);
  CHECK(e.line == 2);
  CHECK(std::string(e.what()).find("never commits") != std::string::npos);
}

namespace {

struct MemoryDb {
  sqlite3* db = nullptr;
  MemoryDb() { REQUIRE(sqlite3_open(":memory:", &db) == SQLITE_OK); }
  ~MemoryDb() { sqlite3_close(db); }
};

// Walks and runs `sql` on a fresh in-memory database: the trimmed statements run, or the error.
std::vector<std::string> sqlite_walk(const std::string& sql, std::optional<Error>& error) {
  MemoryDb m;
  const auto step = up_step(3, sql);
  std::vector<std::string> ran;
  try {
    dbstep::drivers::sqlite::StatementWalk walk(m.db, step);
    while (auto p = walk.next()) {
      ran.push_back(trimmed(text_of(sql, p->span)));
      int rc;
      while ((rc = sqlite3_step(p->stmt.get())) == SQLITE_ROW) {
      }
      if (rc != SQLITE_DONE) throw walk.statement_error(p->span);
    }
    CHECK_FALSE(dbstep::first_unaccounted(sql, walk.spans(), SqlDialect::kSqlite));
  } catch (const Error& e) {
    error = e;
  }
  return ran;
}

}  // namespace

TEST_CASE("accounting: the SQLite walk runs every statement or fails naming the place") {
  using namespace std::string_literals;
  struct SqliteCase {
    const char* name;
    std::string sql;
    std::vector<std::string> ran;  // statements run before the end or the error
    std::uint32_t error_line = 0;  // 0: no error expected
    std::uint32_t error_column = 0;
  };
  const std::vector<SqliteCase> cases = {
      {"plain", "CREATE TABLE a (i int);\nCREATE TABLE b (i int);\n", {"CREATE TABLE a (i int)", "CREATE TABLE b (i int)"}},
      {"NUL byte in the middle", "CREATE TABLE n1 (i int);\n\0CREATE TABLE n2 (i int);"s, {}, 2, 1},
      {"NUL byte first", "\0CREATE TABLE n2 (i int);"s, {}, 1, 1},
      {"NUL byte in a comment at the end", "CREATE TABLE n1 (i int); -- \0"s, {}, 1, 29},
      {"empty statements between statements", "CREATE TABLE a (i int);;\n;CREATE TABLE b (i int);",
       {"CREATE TABLE a (i int)", "CREATE TABLE b (i int)"}},
      {"keyword-less statement (typo)", "CREATE TABLE a (i int);\nTRUNCAT a;\n", {"CREATE TABLE a (i int)"}, 2, 1},
      {"unterminated string", "CREATE TABLE a (i int);\nINSERT INTO a VALUES ('x);\n", {"CREATE TABLE a (i int)"}, 2, 1},
      {"unterminated comment", "CREATE TABLE a (i int);\n/* open\nCREATE TABLE b (i int);", {"CREATE TABLE a (i int)"}, 2, 1},
      {"statement ending in an unterminated comment", "CREATE TABLE a (i int) /* open\nCREATE TABLE b (i int);", {}, 1, 24},
      {"unterminated-looking comment inside a string", "CREATE TABLE a (t text);\nINSERT INTO a VALUES ('/* x')",
       {"CREATE TABLE a (t text)", "INSERT INTO a VALUES ('/* x')"}},
      {"trigger body with semicolons",
       "CREATE TABLE a (i int);\nCREATE TRIGGER t AFTER INSERT ON a BEGIN SELECT 1; SELECT 2; END;\n",
       {"CREATE TABLE a (i int)", "CREATE TRIGGER t AFTER INSERT ON a BEGIN SELECT 1; SELECT 2; END"}},
      {"CRLF and a BOM", "\xEF\xBB\xBF" "CREATE TABLE a (i int);\r\nCREATE TABLE b (i int);\r\n",
       {"CREATE TABLE a (i int)", "CREATE TABLE b (i int)"}},
      {"trailing statement without a semicolon", "CREATE TABLE a (i int);\nCREATE TABLE b (i int)",
       {"CREATE TABLE a (i int)", "CREATE TABLE b (i int)"}},
      {"invalid UTF-8 in a string", "CREATE TABLE a (t text);\nINSERT INTO a VALUES ('caf\xe9');",
       {"CREATE TABLE a (t text)", "INSERT INTO a VALUES ('caf\xe9')"}},
      {"only comments", "-- nothing\n/* at all */ ;\n", {}},
  };
  for (const auto& c : cases) {
    const std::string name = c.name;
    CAPTURE(name);
    std::optional<Error> error;
    const auto ran = sqlite_walk(c.sql, error);
    CHECK(ran == c.ran);
    if (c.error_line == 0) {
      CHECK_FALSE(error.has_value());
      if (error) MESSAGE(error->what());
    } else {
      REQUIRE(error.has_value());
      CHECK(error->file == "3_test.up.sql");
      CHECK(error->line == c.error_line);
      CHECK(error->column == c.error_column);
    }
  }
}

TEST_CASE("accounting: the SQLite walk hands SQLite the file in place (linear in the file size)") {
  // sqlite3_prepare_v2 copies the rest of the text when it is not told where its NUL terminator
  // is, once per statement: 16 MB of INSERTs took 6 s and 50 MB never finished (issue 9, defect 3).
  // SQLite's largest single allocation shows whether it copied: it is far below the file size.
  std::string sql = "CREATE TABLE a (i int, t text);\n";
  while (sql.size() < 4'000'000) sql += "INSERT INTO a VALUES (1, 'some text to make the row longer');\n";
  MemoryDb m;
  const auto step = up_step(1, sql);
  dbstep::drivers::sqlite::StatementWalk walk(m.db, step);
  sqlite3_int64 current = 0, highest = 0;
  sqlite3_status64(SQLITE_STATUS_MALLOC_SIZE, &current, &highest, /*reset=*/1);
  std::size_t statements = 0;
  while (auto p = walk.next()) {
    while (sqlite3_step(p->stmt.get()) == SQLITE_ROW) {
    }
    ++statements;
  }
  sqlite3_status64(SQLITE_STATUS_MALLOC_SIZE, &current, &highest, 0);
  CHECK(statements > 60'000);
  CHECK(highest < 1'000'000);
}
