#pragma once
// A PostgreSQL migration file as the statements the driver sends: split and classified with
// libpg_query (PostgreSQL 15's own parser, and its lexer where the parser gives up), with no
// server involved. Pure functions: the driver calls analyze() once per migration, before it
// sends anything; the fuzzers call it on any bytes.
//
// The split obeys statement accounting (core/statement_accounting.hpp): the statements, the
// wrapper statements dbstep's own transaction replaces (`absorbed`), and blank text cover the
// file exactly. Text that libpg_query's splitters leave out (its lexer drops statements without
// a keyword, such as a typo `TRUNCAT a;` or `xyzzy;`) becomes a statement of its own, sent to the
// server, which reports its syntax error; nothing is ever skipped.

#include <cstddef>
#include <string>
#include <vector>

#include "core/driver.hpp"
#include "core/statement_accounting.hpp"

namespace dbstep::drivers::pg {

enum class TxControl {
  kNone,   // not transaction control, or SAVEPOINT / RELEASE / ROLLBACK TO (fine inside ours)
  kBegin,  // a plain BEGIN / START TRANSACTION
  kCommit, // a plain COMMIT / END
  kOther,  // anything else that controls transactions (ROLLBACK, COMMIT AND CHAIN, PREPARE ...)
};

struct Statement {
  std::size_t offset = 0;  // bytes into the file
  std::size_t length = 0;
  std::string no_transaction;  // why PostgreSQL refuses it in a transaction block, or empty
  TxControl tx = TxControl::kNone;
  bool parsed = false;  // libpg_query parsed it as exactly one statement and classified it
  bool copy = false;    // COPY: its data travels outside the query protocol
  TextSpan span() const { return {offset, length}; }
};

struct Script {
  // What the driver sends, in file order.
  std::vector<Statement> statements;
  // The file's own BEGIN and COMMIT when it is wrapped in exactly one plain pair: dbstep's
  // transaction stands in for them, so they are accounted for but not sent.
  std::vector<TextSpan> absorbed;
  bool outside_transaction = false;
  std::string why_outside;  // for messages: "it holds CREATE INDEX CONCURRENTLY" ...
  // Every statement can be sent in libpq's pipeline mode (one extended-protocol query each):
  // all parsed as exactly one statement, none a COPY.
  bool pipelinable = true;
};

// Splits and classifies `step.sql`. Throws Error(kMigrationFailed) naming the file, line and
// column for a NUL byte (libpq and libpg_query read C strings, so the file would end there) and,
// as a last line of defence, for text the split failed to account for.
Script analyze(const Step& step);

// The statements and absorbed wrapper of `script`, in file order: what accounting checks.
std::vector<TextSpan> accounted_spans(const Script& script);

// The dry run's view of `step` (Driver::preview): analyze()'s statements as the driver sends
// them, with their lines, and its transaction decision. Throws what analyze() throws.
StepPreview preview_of(const Step& step);

}  // namespace dbstep::drivers::pg
