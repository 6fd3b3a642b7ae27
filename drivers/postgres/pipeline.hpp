#pragma once
// How a migration travels to the server, and how a failure is traced back to its statement.
//
// Pipeline: queries sent back to back and their results read afterwards, libpq's pipeline mode
// (libpq 14+; libpqxx 6.4 predates it), one extended-protocol query per statement, so a failure
// still names its statement while the whole migration, BEGIN to COMMIT, costs one round trip.
// After a failure the server skips the rest up to the sync. Not pipelined, the queries run one
// at a time (what pipeline mode cannot carry: COPY, text libpg_query could not split into single
// statements, and statements that refuse any transaction, implicit ones included). Either way
// nothing after the first failure runs, a COPY ... FROM STDIN is refused (it would wait for data
// that never comes) and COPY ... TO STDOUT drained, and the connection is left ready for the
// next command. The failure's fields (position, detail, hint, context) come from libpq's
// PQresultErrorField, which libpqxx 6.4 does not expose.
//
// migration_error(): the failure as Error(kMigrationFailed) naming the file, the line and column
// (the server's position inside the statement, mapped back to the file), the SQLSTATE, the
// detail, hint and context, and the statement.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

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

  // Starts a pipeline on `conn` (or, not `pipelined`, queries one at a time).
  Pipeline(Connection& conn, bool pipelined);
  Pipeline(const Pipeline&) = delete;
  Pipeline& operator=(const Pipeline&) = delete;
  ~Pipeline();  // finishes, leaving the connection as it was, whatever happened

  // Sends `sql`, one statement.
  void add(const std::string& sql);
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

  Connection& conn_;
  bool pipelined_;
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
