#pragma once
// How a migration travels to the server, and how a failure is traced back to its statement.
//
// Pipeline: queries that travel together, in one of three ways (Mode):
// - kOneQuery: all of them in ONE simple-query message ("BEGIN; ...; COMMIT"), what psql sends
//   for a file joined with \; and what golang-migrate sends for a file: one round trip, and the
//   server parses the text once and runs each statement without the extended protocol's
//   per-statement messages (Parse, Bind, Describe, Execute), which cost the server more than
//   the statements of a typical migration. The server answers each statement in order, so the
//   failing one is the one after the last that succeeded, and a position it reports (counted in
//   the whole text) is mapped back to that statement's own. Only for queries that are each one
//   complete statement libpg_query parsed (mode_for() decides), and at finish() only for valid
//   UTF-8 on a UTF8 client encoding: the server refuses a message with one invalid byte before
//   running anything, with no position to tell which statement held it, so such text travels
//   as kPipelined.
// - kPipelined: libpq's pipeline mode (libpq 14+; libpqxx 6.4 predates it), one extended-protocol
//   query per statement, sent back to back and their results read afterwards: one round trip,
//   and each failure names its query.
// - kOneByOne: the queries run one at a time (what neither can carry: COPY, text libpg_query
//   could not split into single statements, and statements that refuse any transaction,
//   implicit ones included).
// Every way, nothing after the first failure runs (the server skips the rest), a COPY ... FROM
// STDIN is refused (it would wait for data that never comes) and COPY ... TO STDOUT drained, and
// the connection is left ready for the next command. The failure's fields (position, detail,
// hint, context) come from libpq's PQresultErrorField, which libpqxx 6.4 does not expose.
//
// migration_error(): the failure as Error(kMigrationFailed) naming the file, the line and column
// (the server's position inside the statement, mapped back to the file), the SQLSTATE, the
// detail, hint and context, and the statement.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/driver.hpp"
#include "core/error.hpp"
#include "drivers/postgres/connection.hpp"
#include "drivers/postgres/statements.hpp"

namespace dbstep::drivers::pg {

class Pipeline {
 public:
  struct Failure {
    std::size_t index;  // of the query, in the order add() received them
    SqlFailure why;
  };

  enum class Mode { kOneQuery, kPipelined, kOneByOne };

  // How `script` (the statements of `step`) travels: kOneQuery when every statement is one
  // libpg_query parsed and none is a COPY (kPipelined for a file of more than 64 MB), else
  // kOneByOne.
  static Mode mode_for(const Step& step, const Script& script);

  // Starts a pipeline on `conn`. kOneQuery sends nothing before finish(); kPipelined sends each
  // query as add() receives it; kOneByOne runs it there.
  Pipeline(Connection& conn, Mode mode);
  Pipeline(const Pipeline&) = delete;
  Pipeline& operator=(const Pipeline&) = delete;
  ~Pipeline();  // finishes, leaving the connection as it was, whatever happened

  // Sends `sql`, one complete statement (kOneQuery: with no trailing semicolon needed).
  void add(std::string_view sql);
  // Sends the statements of `script` (the text of `step`), in order.
  void add_statements(const Step& step, const Script& script);

  // Not pipelined: whether a query succeeded with no transaction left open after it, i.e. the
  // queries so far left a mark that a rollback cannot take back.
  bool committed() const { return committed_; }
  // How many queries add() received.
  std::size_t size() const { return count_; }

  // Ends the pipeline and reads every result: the first failure, if any.
  std::optional<Failure> finish();

 private:
  void fail_now(SqlFailure why, std::optional<std::size_t> index = std::nullopt);
  bool flush();
  void finish_one_query();
  void start_pipeline();
  // kPipelined: sends query `index`.
  void send(std::string_view sql, std::size_t index);

  Connection& conn_;
  Mode mode_;
  bool pipelined_;
  // kOneQuery: the text sent, and where each query starts in it (bytes), with a last entry for
  // the text's end.
  std::string text_;
  std::vector<std::size_t> starts_;
  bool finished_ = false;
  bool broken_ = false;  // libpq refused a send: nothing more is read
  bool committed_ = false;
  std::size_t count_ = 0;  // queries added
  std::size_t sent_ = 0;   // queries libpq took
  std::optional<Failure> failure_;
};

// The failure of `step`'s statement `st` (null: the failure is not in a statement, and `at` says
// where: "at COMMIT", "at its end"), with every password of `conn`'s URL hidden.
Error migration_error(const Connection& conn, const Step& step, const Statement* st,
                      const SqlFailure& f, std::string_view at = "");
// The failure of the query at `index` of the script's statements (past the last: its end).
Error statement_error(const Connection& conn, const Step& step, const Script& script,
                      std::size_t index, const SqlFailure& f);

}  // namespace dbstep::drivers::pg
