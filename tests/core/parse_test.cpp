// File names (golang-migrate's source/parse_test.go vectors), the index, URLs and SQL text
// positions (golang-migrate's computeLineFromPos vectors).

#include <doctest/doctest.h>

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "core/error.hpp"
#include "core/migration.hpp"
#include "core/sql_text.hpp"
#include "core/url.hpp"

using namespace dbstep;

TEST_CASE("parse_file_name: golang-migrate's vectors") {
  struct Row {
    const char* name;
    Version version;
    const char* identifier;
    Direction direction;
  };
  const Row rows[] = {
      {"1_foobar.up.sql", 1, "foobar", Direction::kUp},
      {"1_foobar.down.sql", 1, "foobar", Direction::kDown},
      {"1_f-o_ob+ar.up.sql", 1, "f-o_ob+ar", Direction::kUp},
      {"1485385885_foobar.up.sql", 1485385885, "foobar", Direction::kUp},
      {"20170412214116_date_foobar.up.sql", 20170412214116ULL, "date_foobar", Direction::kUp},
      {"0001_leading_zeros.down.sql", 1, "leading_zeros", Direction::kDown},
      {"2_.up.sql", 2, "", Direction::kUp},
      {"3_a.up.b.down.sql", 3, "a.up.b", Direction::kDown},  // greedy identifier
      {"4_x.up.", 4, "x", Direction::kUp},                     // empty extension
      {"18446744073709551615_max.up.sql", 18446744073709551615ULL, "max", Direction::kUp},
  };
  for (const auto& r : rows) {
    CAPTURE(r.name);
    auto f = parse_file_name(r.name);
    REQUIRE(f);
    CHECK(f->version == r.version);
    CHECK(f->identifier == r.identifier);
    CHECK(f->direction == r.direction);
    CHECK(f->name == r.name);
  }
  for (const char* bad : {"-1_foobar.up.sql", "foobar.up.sql", "1.up.sql", "1_foobar.sql",
                          "1_foobar.up", "1_foobar.down", "README.md", "", "_1.up.sql"}) {
    CAPTURE(bad);
    CHECK_FALSE(parse_file_name(bad));
  }
  CHECK_THROWS_AS(parse_file_name("18446744073709551616_too_big.up.sql"), Error);
}

TEST_CASE("MigrationIndex: order, neighbours, duplicates") {
  auto idx = MigrationIndex::build({"7_g.up.sql", "1_a.up.sql", "1_a.down.sql", "3_c.up.sql",
                                    "notes.txt", "5_e.down.sql"},
                                   "test");
  CHECK(idx.size() == 4);
  CHECK(idx.first() == OptVersion{1});
  CHECK(idx.last() == OptVersion{7});
  CHECK(idx.next(1) == OptVersion{3});
  CHECK(idx.next(5) == OptVersion{7});
  CHECK(idx.prev(7) == OptVersion{5});
  CHECK_FALSE(idx.next(2));  // not in the index, though 3 exists
  CHECK_FALSE(idx.prev(1));
  CHECK_FALSE(idx.next(7));
  CHECK(idx.find(5)->identifier() == "e");
  CHECK_FALSE(idx.find(5)->up);
  try {
    MigrationIndex::build({"1_foo.up.sql", "1_bar.up.sql"}, "folder x");
    FAIL("expected a duplicate error");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::kDuplicateMigration);
    std::string m = e.what();
    CHECK(m.find("duplicate migration file") != std::string::npos);
    CHECK(m.find("1_foo.up.sql") != std::string::npos);
    CHECK(m.find("1_bar.up.sql") != std::string::npos);
    CHECK(m.find("folder x") != std::string::npos);
  }
  // The same version in both directions with different identifiers is allowed.
  CHECK(MigrationIndex::build({"1_foo.up.sql", "1_bar.down.sql"}, "x").size() == 1);
}

TEST_CASE("parse_file_name: the right-most .up. or .down. splits, whatever comes before it") {
  struct Row {
    const char* name;
    const char* identifier;
    Direction direction;
    const char* why;
  };
  const Row rows[] = {
      {"1_a.down.up.sql", "a.down", Direction::kUp, "up after down"},
      {"1_a.up.down.sql", "a.up", Direction::kDown, "down after up"},
      {"1_.up.up.sql", ".up", Direction::kUp, "two ups"},
      {"1_x.up.down", "x", Direction::kUp, "no dot after down: the up splits"},
      {"1_x.down.", "x", Direction::kDown, "empty extension"},
      {"1_x.up.tar.gz", "x", Direction::kUp, "dotted extension"},
      {"1_down.up.sql", "down", Direction::kUp, "identifier named like a direction"},
      {"1_.down.sql", "", Direction::kDown, "empty identifier"},
      {"000000000000000000000000001_z.up.sql", "z", Direction::kUp, "long but fits"},
  };
  for (const auto& r : rows) {
    CAPTURE(r.why);
    auto f = parse_file_name(r.name);
    REQUIRE(f);
    CHECK(f->identifier == r.identifier);
    CHECK(f->direction == r.direction);
    CHECK(f->name == r.name);
  }
  // '.' in golang-migrate's regex matches anything but a newline, anywhere after the version.
  for (const char* bad : {"1_a\nb.up.sql", "1_a.up.s\nql", "1_a.up\n.sql", "1_a.u.p.sql", "1_up.",
                          "1_.up", "1_a.UP.sql", "1x_a.up.sql", "1 _a.up.sql"}) {
    CAPTURE(bad);
    CHECK_FALSE(parse_file_name(bad));
  }
  // Too big only matters for a name that is otherwise a migration's.
  CHECK_FALSE(parse_file_name("99999999999999999999999_notes.txt"));
  CHECK_THROWS_AS(parse_file_name("000099999999999999999999_x.down.sql"), Error);
}

TEST_CASE("MigrationIndex: listing order does not matter, from a copy or from a temporary") {
  // Versions that differ in several bytes (timestamps, the top of the 64-bit range, 0), both
  // directions, in an order of their own; the index is the same in every order.
  const std::vector<std::string> sorted = {
      "0_zero.up.sql",
      "1_one.up.sql",
      "1_one.down.sql",
      "255_a.down.sql",
      "256_b.up.sql",
      "65536_c.up.sql",
      "65536_c.down.sql",
      "20170412214116_date.up.sql",
      "20170412214117_date2.down.sql",
      "18446744073709551614_almost.up.sql",
      "18446744073709551615_max.up.sql",
      "18446744073709551615_max.down.sql",
  };
  std::vector<std::string> listing = sorted;
  listing.push_back("README.md");
  listing.push_back("sub");
  auto check = [](const MigrationIndex& idx) {
    REQUIRE(idx.size() == 9);
    const Version want[] = {0,
                            1,
                            255,
                            256,
                            65536,
                            20170412214116ULL,
                            20170412214117ULL,
                            18446744073709551614ULL,
                            18446744073709551615ULL};
    for (std::size_t i = 0; i < idx.size(); ++i) {
      CAPTURE(i);
      const auto& e = idx.entries()[i];
      CHECK(e.version == want[i]);
      if (e.up) {
        CHECK(e.up->version == e.version);
        CHECK(e.up->direction == Direction::kUp);
        CHECK(e.up->name.find(".up.") != std::string::npos);
      }
      if (e.down) {
        CHECK(e.down->version == e.version);
        CHECK(e.down->direction == Direction::kDown);
        CHECK(e.down->name.find(".down.") != std::string::npos);
      }
    }
    CHECK(idx.find(1)->up->name == "1_one.up.sql");
    CHECK(idx.find(1)->down->name == "1_one.down.sql");
    CHECK(idx.find(255)->identifier() == "a");
    CHECK_FALSE(idx.find(255)->up);
    CHECK(idx.find(18446744073709551615ULL)->down->identifier == "max");
    CHECK(idx.where() == "test");
  };
  for (int round = 0; round < 4; ++round) {
    CAPTURE(round);
    if (round == 1) std::reverse(listing.begin(), listing.end());
    if (round >= 2) {
      // A fixed shuffle (a directory lists in hash order).
      for (std::size_t i = 0; i < listing.size(); ++i) {
        std::swap(listing[i], listing[(i * 7 + static_cast<std::size_t>(round)) % listing.size()]);
      }
    }
    check(MigrationIndex::build(listing, "test"));
    std::vector<std::string> temporary = listing;
    check(MigrationIndex::build(std::move(temporary), "test"));
  }
}

TEST_CASE("MigrationIndex: 600 files numbered one after another, listed in a scrambled order") {
  // Versions 1..300 but 150, each up and down but 7's down, in an order of their own: build()
  // sorts these in one pass on their distance from the lowest (the test above: byte by byte).
  std::vector<std::string> names;
  for (Version v = 1; v <= 300; ++v) {
    if (v == 150) continue;
    names.push_back(fmt::format("{:04}_m{}.up.sql", v, v));
    if (v != 7) names.push_back(fmt::format("{:04}_m{}.down.sql", v, v));
  }
  for (std::size_t i = 0; i < names.size(); ++i) {
    std::swap(names[i], names[(i * 389 + 17) % names.size()]);
  }
  const auto idx = MigrationIndex::build(std::move(names), "test");
  REQUIRE(idx.size() == 299);
  Version want = 1;
  for (const auto& e : idx.entries()) {
    if (want == 150) ++want;
    CAPTURE(want);
    CHECK(e.version == want);
    REQUIRE(e.up);
    CHECK(e.up->name == fmt::format("{:04}_m{}.up.sql", want, want));
    CHECK(e.identifier() == fmt::format("m{}", want));
    CHECK(e.down.has_value() == (want != 7));
    ++want;
  }
  CHECK(idx.next(149) == OptVersion{151});
  CHECK_FALSE(idx.contains(150));
}

TEST_CASE("MigrationIndex: a duplicate names the two first files of its version in byte order") {
  // Three up files for version 2 (and a duplicate down for version 3, which comes later): the
  // error is about version 2 and names 2_a and 2_b whatever the listing order.
  std::vector<std::string> names = {"3_x.down.sql", "2_c.up.sql", "2_b.up.sql", "1_ok.up.sql",
                                    "3_y.down.sql", "2_a.up.sql", "2_ok.down.sql"};
  for (int round = 0; round < 3; ++round) {
    CAPTURE(round);
    std::rotate(names.begin(), names.begin() + 2, names.end());
    try {
      MigrationIndex::build(names, "folder m");
      FAIL("expected a duplicate error");
    } catch (const Error& e) {
      CHECK(e.code() == ErrorCode::kDuplicateMigration);
      CHECK(std::string(e.what()) ==
            "duplicate migration file: 2_a.up.sql and 2_b.up.sql in folder m both have version 2 "
            "(up); rename or remove one of them");
    }
  }
  // The same name listed twice (a source that repeats itself) is a duplicate too.
  CHECK_THROWS_AS(MigrationIndex::build({"5_e.down.sql", "5_e.down.sql"}, "x"), Error);
}

TEST_CASE("Url: scheme, body, x- parameters, redaction") {
  auto u = Url::parse("foo://host?a=b&x-custom=foo&c=d&ok=y");
  CHECK(u.scheme() == "foo");
  CHECK(u.without_custom_params() == "foo://host?a=b&c=d&ok=y");
  CHECK(u.param("x-custom") == std::optional<std::string>("foo"));
  CHECK(u.backend_params().size() == 3);
  CHECK(Url::parse("protocol://path").scheme() == "protocol");
  CHECK(Url::parse("mysql://user:pass@tcp(host:1337)/db").scheme() == "mysql");
  CHECK_THROWS_AS(Url::parse(""), Error);
  CHECK_THROWS_AS(Url::parse("hello"), Error);
  CHECK(Url::parse("sqlite:///abs/x%20y.db?x-migrations-table=v").body() == "/abs/x y.db");
  CHECK(Url::parse("postgres://bob:s3cret@db:5432/app?sslmode=disable").redacted() ==
        "postgres://bob:xxxxx@db:5432/app?sslmode=disable");
  CHECK(redact_secrets("host=db password=s3cret user=bob") == "host=db password=xxxxx user=bob");
  CHECK(redact_secrets("postgres://db/app?password=s3cret&x=1") ==
        "postgres://db/app?password=xxxxx&x=1");
  CHECK(redact_secrets("postgres://u:se/cret@127.0.0.1:1/db") == "postgres://u:xxxxx@127.0.0.1:1/db");
  CHECK(redact_secrets("postgres://u:p@ss@db/x?sslmode=disable") == "postgres://u:xxxxx@db/x?sslmode=disable");
  CHECK(redact_secrets("see postgres://bob@db/x and file:///tmp/a") == "see postgres://bob@db/x and file:///tmp/a");
  CHECK(redact_secrets("host=db password='it\\'s secret' user=bob").find("secret") == std::string::npos);
  CHECK(redact_secrets("PASSWORD = hunter2 x") == "PASSWORD = xxxxx x");
  // Found by tests/fuzz/fuzz_url: a libpq value runs to a space ('&' included), a query value
  // past its closing quote, and a URL inside an earlier query value does not hide a password=.
  CHECK(redact_secrets("postgres:host=db password=ab&cd dbname=app") ==
        "postgres:host=db password=xxxxx dbname=app");
  CHECK(redact_secrets("postgres://db/app?password='ab'cd&x=1") == "postgres://db/app?password=xxxxx&x=1");
  CHECK(redact_secrets("postgres://db/app?o=a://b:c&password=p@ss") ==
        "postgres://db/app?o=a://b:xxxxx");
  // Linear in the text: a megabyte-long statement is fine.
  CHECK(redact_secrets(std::string(1 << 20, 'a')).size() == (1u << 20));
  CHECK(parse_bool_param("x", "TRUE"));
  CHECK_FALSE(parse_bool_param("x", "0"));
  CHECK_THROWS_AS(parse_bool_param("x-no-tx-wrap", "yeppers"), Error);
}

TEST_CASE("position_at: golang-migrate's computeLineFromPos vectors, LF, CRLF and non-ASCII") {
  struct Row {
    std::size_t pos;  // 1-based character position, as PostgreSQL reports it
    const char* text;
    std::uint32_t line, column;
  };
  const Row rows[] = {{15, "SELECT *\nFROM foo", 2, 6},       {16, "SELECT *\n\nFROM foo", 3, 6},
                      {25, "SELECT *\nFROM foo\nWHERE x", 3, 7}, {27, "SELECT *\n\nFROM foo\n\nWHERE x", 5, 7},
                      {10, "SELECT *\nFROMM foo", 2, 1},      {11, "SELECT *\n\nFROMM foo", 3, 1},
                      {17, "SELECT *\nFROM foo", 2, 8}};
  for (const auto& r : rows) {
    for (bool crlf : {false, true}) {
      for (bool umlaut : {false, true}) {
        std::string text = r.text;
        if (umlaut) {
          auto at = text.find("FROM");
          if (at != std::string::npos) text.replace(at, 4, "FR\xC3\x96M");
        }
        std::size_t pos = r.pos;
        if (crlf) {
          std::string with;
          std::size_t newlines_before = 0, chars = 0;
          for (char c : text) {
            if (c == '\n') {
              with += '\r';
              if (chars < r.pos) ++newlines_before;
            }
            with += c;
            if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++chars;
          }
          text = with;
          pos += newlines_before;  // PostgreSQL counts the '\r' characters too
        }
        CAPTURE(text);
        auto p = position_at(text, byte_offset_of_char(text, pos - 1));
        CHECK(p.line == r.line);
        CHECK(p.column == r.column);
      }
    }
  }
}

TEST_CASE("sql_text: contains_ascii_ci finds a lower-case word in any ASCII case") {
  CHECK(contains_ascii_ci("SELECT 1; DEALLOCATE ALL;", "deallocate"));
  CHECK(contains_ascii_ci("-- DisCard later", "discard"));
  CHECK(contains_ascii_ci("deallocate", "deallocate"));
  CHECK_FALSE(contains_ascii_ci("DEALL' || 'OCATE", "deallocate"));
  CHECK_FALSE(contains_ascii_ci("dealloc", "deallocate"));
  CHECK_FALSE(contains_ascii_ci("", "discard"));
  CHECK_FALSE(contains_ascii_ci("D\xc9ALLOCATE", "deallocate"));  // ASCII only
}

TEST_CASE("sql_text: directives, keywords, byte-order mark") {
  CHECK(has_directive("-- dbstep:no-transaction\nCREATE INDEX", "dbstep:no-transaction"));
  CHECK(has_directive("\xEF\xBB\xBF/* header */\n-- x\n--dbstep:no-transaction\nSELECT 1", "dbstep:no-transaction"));
  CHECK_FALSE(has_directive("SELECT 1; -- dbstep:no-transaction", "dbstep:no-transaction"));
  CHECK_FALSE(has_directive("-- dbstep:no-transactions\nSELECT 1", "dbstep:no-transaction"));
  CHECK(first_keyword("  -- c\n/* d */ begin;") == "BEGIN");
  CHECK(first_keyword("-- only a comment") == "");
  CHECK(bom_length("\xEF\xBB\xBFX") == 3);
  CHECK(position_at("\xEF\xBB\xBFX", 3).column == 1);
  CHECK(statement_excerpt("  SELECT 1  \n") == "SELECT 1");
  CHECK(statement_excerpt("SELECT 123456", 6) == "SELECT...");
}
