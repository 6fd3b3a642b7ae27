// Fuzzes the SQLite driver's statement walk (drivers/sqlite/statements.hpp) on an in-memory
// database, running each statement as the driver does so that later ones can prepare.
//
// Oracle, statement accounting judged by SQLite itself rather than by dbstep's own lexer:
// - a file with a NUL byte is refused before anything runs, with the NUL's line and column;
// - every statement the walk hands out is exactly the text SQLite compiled (sqlite3_sql), the
//   statements come in file order without overlapping, and every part of the file between them
//   (and after the last) is text SQLite compiles to no statement at all: whitespace, comments,
//   `;`. So the statements run plus the parts skipped cover the file, and nothing skipped is SQL;
// - the walk never refuses text that SQLite itself passes over as empty (unaccounted_text_error
//   for such text would be a false alarm), except where dbstep is stricter on purpose (an
//   unterminated /* comment, a byte-order mark past offset 0); and it ends only when the whole
//   file is accounted for.
// A statement that SQLite cannot prepare or that fails when run ends the walk, as it fails the
// migration in the driver.

#include <sqlite3.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "tests/fuzz/fuzz_support.hpp"
#include "core/driver.hpp"
#include "core/error.hpp"
#include "core/sql_text.hpp"
#include "core/statement_accounting.hpp"
#include "drivers/sqlite/statements.hpp"

namespace {

using dbstep::TextSpan;

using dbstep::fuzz::escaped;

[[noreturn]] void fail(const char* what, std::string_view text, std::size_t at) {
  std::fprintf(stderr, "fuzz_sqlite_split: %s at byte %zu\n  file: \"%s\"\n", what, at,
               escaped(text).c_str());
  std::abort();
}

struct CloseDb {
  void operator()(sqlite3* db) const { sqlite3_close(db); }
};

int deny_files(void*, int action, const char*, const char*, const char*, const char*) {
  // In memory only: no ATTACH (nor VACUUM INTO, which attaches its target).
  return action == SQLITE_ATTACH || action == SQLITE_DETACH ? SQLITE_DENY : SQLITE_OK;
}

int stop_long_queries(void* counter) {
  return ++*static_cast<int*>(counter) > 2000;  // x 1000 VM steps: ends recursive CTEs
}

// True when SQLite compiles `part` to no statement: only whitespace, comments and `;`.
bool sqlite_sees_nothing(sqlite3* db, std::string_view part) {
  std::string copy(part);
  const char* rest = copy.c_str();
  while (*rest) {
    sqlite3_stmt* stmt = nullptr;
    const char* tail = nullptr;
    int rc = sqlite3_prepare_v2(db, rest, -1, &stmt, &tail);
    if (stmt) {
      sqlite3_finalize(stmt);
      return false;
    }
    // An error (e.g. "x" alone is a syntax error), or no progress: not empty.
    if (rc != SQLITE_OK || !tail || tail <= rest) return false;
    rest = tail;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  dbstep::Step step;
  step.version = 1;
  step.identifier = "fuzz";
  step.file = "1_fuzz.up.sql";
  step.sql.assign(reinterpret_cast<const char*>(data), size);
  const std::string& text = step.sql;

  sqlite3* raw = nullptr;
  if (sqlite3_open_v2(":memory:", &raw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) !=
      SQLITE_OK) {
    std::abort();
  }
  std::unique_ptr<sqlite3, CloseDb> db(raw);
  sqlite3_limit(raw, SQLITE_LIMIT_ATTACHED, 0);
  sqlite3_limit(raw, SQLITE_LIMIT_LENGTH, 1 << 20);
  sqlite3_set_authorizer(raw, deny_files, nullptr);
  int steps = 0;
  sqlite3_progress_handler(raw, 1000, stop_long_queries, &steps);

  const std::size_t nul = text.find('\0');
  std::optional<dbstep::drivers::sqlite::StatementWalk> walk;
  try {
    walk.emplace(raw, step);
  } catch (const dbstep::Error& e) {
    if (nul == std::string::npos) fail("refused a file without a NUL byte", text, 0);
    dbstep::TextPosition pos = dbstep::position_at(text, nul);
    if (e.code() != dbstep::ErrorCode::kMigrationFailed || e.line != pos.line ||
        e.column != pos.column) {
      fail("NUL byte error does not name the NUL's line and column", text, nul);
    }
    return 0;
  }
  if (nul != std::string::npos) fail("accepted a file with a NUL byte", text, nul);

  // A separate connection judges the skipped parts, so the walk's schema changes do not matter.
  sqlite3* judge_raw = nullptr;
  sqlite3_open_v2(":memory:", &judge_raw, SQLITE_OPEN_READWRITE, nullptr);
  std::unique_ptr<sqlite3, CloseDb> judge(judge_raw);

  std::size_t covered = 0;  // everything before this is a statement run or checked blank
  const std::size_t bom = dbstep::bom_length(text);
  auto check_skipped = [&](std::size_t to) {
    std::size_t from = covered == 0 ? bom : covered;
    if (from < to && !sqlite_sees_nothing(judge_raw, std::string_view(text).substr(from, to - from))) {
      fail("skipped text that SQLite compiles to a statement (or cannot read)", text, from);
    }
  };
  while (true) {
    std::optional<dbstep::drivers::sqlite::Prepared> p;
    try {
      p = walk->next();
    } catch (const dbstep::Error& e) {
      // The message's start, which the file's own text cannot imitate.
      if (std::string_view(e.what()).starts_with("migration 1 (1_fuzz.up.sql) has text at")) {
        // The walk refused text SQLite passed over. Allowed where dbstep is stricter than
        // SQLite on purpose (statement_accounting.hpp): an unterminated /* comment, which SQLite
        // lets swallow the rest of the file, and a byte-order mark after the start, which
        // SQLite's tokenizer reads as a space anywhere but dbstep only at offset 0.
        bool allowed = false;
        for (std::size_t at = covered; at < text.size() && !allowed; ++at) {
          const bool open_comment = text.compare(at, 2, "/*") == 0 &&
                                    text.find("*/", at + 2) == std::string::npos;
          const bool bom = at > 0 && text.compare(at, 3, "\xEF\xBB\xBF") == 0;
          if (!open_comment && !bom) continue;
          const dbstep::TextPosition pos = dbstep::position_at(text, at);
          allowed = pos.line == e.line && pos.column == e.column;
        }
        if (!allowed) {
          std::fprintf(stderr, "fuzz_sqlite_split: the walk threw: %s\n", e.what());
          fail("refused text SQLite passes over as empty (not an unterminated comment)", text,
               covered);
        }
      }
      return 0;  // a statement SQLite cannot prepare: the migration fails, nothing skipped
    }
    if (!p) break;
    const TextSpan span = p->span;
    if (span.offset < covered || span.length == 0 || span.end() > text.size()) {
      fail("statement span out of order, empty or past the end", text, span.offset);
    }
    const char* compiled = sqlite3_sql(p->stmt.get());
    if (!compiled || std::string_view(compiled) != std::string_view(text).substr(span.offset, span.length)) {
      fail("statement span is not the text SQLite compiled", text, span.offset);
    }
    check_skipped(span.offset);
    covered = span.end();
    int rc;
    while ((rc = sqlite3_step(p->stmt.get())) == SQLITE_ROW) {
    }
    if (rc != SQLITE_DONE) return 0;  // the statement failed: so does the migration
  }
  check_skipped(text.size());
  return 0;
}
