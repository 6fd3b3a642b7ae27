#pragma once
// A SQLite migration file walked statement by statement with SQLite's own parser:
// sqlite3_prepare_v2 compiles the first statement of the text and says where it ended (the
// tail), and the walk goes on from there. The walk cannot be done ahead of running: a statement
// can only be prepared once the statements before it have run (an INSERT needs its table).
//
// The walk obeys statement accounting (core/statement_accounting.hpp): every prepared
// statement's span is recorded, SQLite's empty statements (whitespace, comments, `;`) are the
// only text passed over, and a NUL byte, which would end the text for SQLite's C interface, is
// an error before anything is prepared. The walk is linear in the file's size: each statement is
// handed to SQLite with the file's own NUL terminator, so SQLite never copies the rest.

#include <sqlite3.h>

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/driver.hpp"
#include "core/statement_accounting.hpp"

namespace dbstep::drivers::sqlite {

struct FinalizeStatement {
  void operator()(sqlite3_stmt* stmt) const noexcept { sqlite3_finalize(stmt); }
};
using StatementPtr = std::unique_ptr<sqlite3_stmt, FinalizeStatement>;

struct Prepared {
  StatementPtr stmt;
  TextSpan span;  // the statement's text in the file, from the end of the previous one
};

// What a statement of a file means for the transaction dbstep runs the file in. apply() and the
// dry run (drivers/sqlite/preview.cpp) decide with this one function.
enum class TxRole {
  kRun,                 // an ordinary statement
  kWrapperBegin,        // the file's one plain BEGIN, first: dbstep's transaction stands in for it
  kWrapperCommit,       // the COMMIT / END closing that BEGIN, last: likewise not run
  kNeedsNoTransaction,  // other transaction control, or VACUUM: the file runs outside ours
  kForeignKeysPragma,   // PRAGMA foreign_keys = ...: SQLite ignores it inside a transaction
};
// `ran_any`: a statement of the file ran before this one; `wrapper_open`: the file's BEGIN was
// taken as the wrapper; `last`: only blank text follows the statement.
TxRole transaction_role(std::string_view statement, bool ran_any, bool wrapper_open, bool last);

// Walks one file on one connection. Not copyable; the file's text must outlive the walk.
class StatementWalk {
 public:
  // Throws nul_byte_error() when `step.sql` holds a NUL byte.
  StatementWalk(sqlite3* db, const Step& step);
  StatementWalk(const StatementWalk&) = delete;
  StatementWalk& operator=(const StatementWalk&) = delete;

  // Prepares the next statement, or nullopt when only blank text remains: then every byte of
  // the file has been accounted for (checked; unaccounted_text_error() otherwise). Throws
  // statement_error() when SQLite cannot prepare it (a syntax error, a missing table ...).
  std::optional<Prepared> next();

  // The spans of the statements prepared so far, in file order.
  const std::vector<TextSpan>& spans() const { return spans_; }

  // True when nothing but blank text follows `span`.
  bool is_last(const TextSpan& span) const;

  // The error for statement `span` failing with SQLite's current error on the connection:
  // file, version, line and column (of the failing token where SQLite knows it, else of the
  // statement's start), SQLite's message and extended code, the statement's text.
  Error statement_error(const TextSpan& span) const;

 private:
  // The offset of the unterminated "/*" in `span` (the last statement), or its start.
  std::size_t unterminated_comment_at(const TextSpan& span) const;

  sqlite3* db_;
  const Step& step_;
  std::size_t at_;  // where the next statement starts
  std::vector<TextSpan> spans_;
};

}  // namespace dbstep::drivers::sqlite
