// Fuzzes the PostgreSQL driver's split and classification (drivers/postgres/statements.hpp:
// analyze(), pure, no server).
//
// Oracle, statement accounting judged by PostgreSQL's own lexer (libpg_query's scanner) rather
// than by dbstep's:
// - a file with a NUL byte is refused with the NUL's line and column;
// - otherwise analyze() returns (or refuses a file that BEGINs and never COMMITs), and never
//   throws unaccounted_text_error: the split accounts for every byte by construction;
// - the statements sent plus the absorbed BEGIN/COMMIT wrapper are in file order, do not overlap
//   and stay inside the file;
// - every token PostgreSQL's lexer finds in the file, except comments and `;`, lies inside a
//   statement sent or the absorbed wrapper (when the lexer can read the whole file), and every
//   part between them is blank for that lexer too. So nothing but whitespace, comments and `;`
//   is skipped.
// - an absorbed wrapper is a BEGIN before every statement and a COMMIT after every statement.

#include <pg_query.h>
#include <pg_query/pg_query.pb-c.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tests/fuzz/fuzz_support.hpp"
#include "core/driver.hpp"
#include "core/error.hpp"
#include "core/sql_text.hpp"
#include "core/statement_accounting.hpp"
#include "drivers/postgres/statements.hpp"

namespace {

using dbstep::TextSpan;

using dbstep::fuzz::escaped;

[[noreturn]] void fail(const char* what, std::string_view text, std::size_t at) {
  std::fprintf(stderr, "fuzz_postgres_split: %s at byte %zu\n  file: \"%s\"\n", what, at,
               escaped(text).c_str());
  std::abort();
}

struct Token {
  std::size_t start;
  std::size_t end;
  bool blank;  // a comment or ';'
};

// PostgreSQL's lexer over `text` (NUL-free); false when it cannot read it (an unterminated
// string or comment ...).
bool scan(const std::string& text, std::vector<Token>& tokens) {
  PgQueryScanResult r = pg_query_scan(text.c_str());
  struct FreeResult {
    PgQueryScanResult& r;
    ~FreeResult() { pg_query_free_scan_result(r); }
  } free_result{r};
  if (r.error) return false;
  struct FreeScan {
    void operator()(PgQuery__ScanResult* s) const { pg_query__scan_result__free_unpacked(s, nullptr); }
  };
  std::unique_ptr<PgQuery__ScanResult, FreeScan> s(pg_query__scan_result__unpack(
      nullptr, r.pbuf.len, reinterpret_cast<const std::uint8_t*>(r.pbuf.data)));
  if (!s) std::abort();
  for (std::size_t i = 0; i < s->n_tokens; ++i) {
    const PgQuery__ScanToken* t = s->tokens[i];
    tokens.push_back({static_cast<std::size_t>(t->start), static_cast<std::size_t>(t->end),
                      t->token == PG_QUERY__TOKEN__SQL_COMMENT ||
                          t->token == PG_QUERY__TOKEN__C_COMMENT ||
                          t->token == PG_QUERY__TOKEN__ASCII_59});
  }
  return true;
}

// True when PostgreSQL's lexer reads `part` as nothing but comments and `;`.
bool postgres_sees_nothing(std::string_view part) {
  std::vector<Token> tokens;
  if (!scan(std::string(part), tokens)) return false;
  return std::all_of(tokens.begin(), tokens.end(), [](const Token& t) { return t.blank; });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  dbstep::Step step;
  step.version = 1;
  step.identifier = "fuzz";
  step.file = "1_fuzz.up.sql";
  step.sql.assign(reinterpret_cast<const char*>(data), size);
  const std::string& text = step.sql;
  const std::size_t nul = text.find('\0');

  dbstep::drivers::pg::Script script;
  try {
    script = dbstep::drivers::pg::analyze(step);
  } catch (const dbstep::Error& e) {
    std::string_view what = e.what();
    if (nul != std::string::npos) {
      dbstep::TextPosition pos = dbstep::position_at(text, nul);
      if (e.line != pos.line || e.column != pos.column) {
        fail("NUL byte error does not name the NUL's line and column", text, nul);
      }
      return 0;
    }
    // Message starts, which the file's own text cannot imitate.
    if (what.starts_with("migration 1 (1_fuzz.up.sql) begins a transaction at line")) return 0;
    std::fprintf(stderr, "fuzz_postgres_split: analyze() threw: %s\n", e.what());
    fail(what.starts_with("migration 1 (1_fuzz.up.sql) has text at")
             ? "analyze() could not account for its own split"
             : "analyze() threw an unexpected error",
         text, 0);
  }
  if (nul != std::string::npos) fail("accepted a file with a NUL byte", text, nul);

  const std::vector<TextSpan> spans = dbstep::drivers::pg::accounted_spans(script);
  std::size_t covered = 0;
  const std::size_t bom = dbstep::bom_length(text);
  for (const TextSpan& s : spans) {
    if (s.offset < covered || s.end() > text.size() || s.end() < s.offset) {
      fail("spans out of order, overlapping or past the end", text, s.offset);
    }
    std::size_t from = std::max(covered, bom);
    if (from < s.offset && !postgres_sees_nothing(text.substr(from, s.offset - from))) {
      fail("skipped text PostgreSQL's lexer reads as SQL", text, from);
    }
    covered = s.end();
  }
  std::size_t from = std::max(covered, bom);
  if (from < text.size() && !postgres_sees_nothing(text.substr(from))) {
    fail("skipped text PostgreSQL's lexer reads as SQL (at the end)", text, from);
  }

  // Every SQL token of the whole file is inside a span.
  std::vector<Token> tokens;
  if (scan(text.substr(bom), tokens)) {
    std::size_t k = 0;
    for (const Token& t : tokens) {
      if (t.blank) continue;
      const std::size_t start = bom + t.start;
      const std::size_t end = bom + t.end;
      while (k < spans.size() && spans[k].end() <= start) ++k;
      if (k == spans.size() || spans[k].offset > start || spans[k].end() < end) {
        fail("a token of the file is in no statement sent", text, start);
      }
    }
  }

  if (!script.absorbed.empty()) {
    if (script.absorbed.size() != 2 || script.outside_transaction) {
      fail("absorbed wrapper is not one BEGIN/COMMIT pair", text, 0);
    }
    for (const auto& st : script.statements) {
      if (st.offset < script.absorbed[0].end() || st.offset + st.length > script.absorbed[1].offset) {
        fail("a statement lies outside the absorbed BEGIN ... COMMIT", text, st.offset);
      }
    }
  }
  return 0;
}
