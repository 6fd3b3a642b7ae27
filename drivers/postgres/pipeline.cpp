#include "drivers/postgres/pipeline.hpp"

#include <fmt/format.h>
#include <libpq-fe.h>
#include <poll.h>

#include <cerrno>
#include <cstdlib>
#include <memory>

#include "core/sql_text.hpp"
#include "core/statement_accounting.hpp"

namespace dbstep::drivers::pg {

namespace {

struct ResultDeleter {
  void operator()(PGresult* r) const noexcept { PQclear(r); }
};
using ResultPtr = std::unique_ptr<PGresult, ResultDeleter>;

std::string field(const PGresult* r, int code) {
  const char* v = r ? PQresultErrorField(r, code) : nullptr;
  return v ? std::string(v) : std::string();
}

SqlFailure failure_of(PGconn* conn, const PGresult* r) {
  SqlFailure f;
  if (r && PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY)) {
    f.sqlstate = field(r, PG_DIAG_SQLSTATE);
    f.message = field(r, PG_DIAG_MESSAGE_PRIMARY);
    f.detail = field(r, PG_DIAG_MESSAGE_DETAIL);
    f.hint = field(r, PG_DIAG_MESSAGE_HINT);
    f.context = field(r, PG_DIAG_CONTEXT);
    std::string pos = field(r, PG_DIAG_STATEMENT_POSITION);
    if (!pos.empty()) f.position = std::atoi(pos.c_str());
    f.verbose = trim(PQresultErrorMessage(r));
  } else {
    f.message = one_line(r && *PQresultErrorMessage(r) ? PQresultErrorMessage(r)
                                                        : PQerrorMessage(conn));
    if (f.message.empty()) f.message = "unknown error from libpq";
    f.verbose = f.message;
  }
  return f;
}

// Sends `sql` with the simple-query protocol: its failure, if any. COPY ... FROM STDIN is
// refused and COPY ... TO STDOUT drained, so the connection is always ready for the next
// command afterwards.
std::optional<SqlFailure> run(PGconn* conn, const std::string& sql) {
  ResultPtr r(PQexec(conn, sql.c_str()));
  ExecStatusType st = r ? PQresultStatus(r.get()) : PGRES_FATAL_ERROR;
  if (st == PGRES_COPY_IN || st == PGRES_COPY_OUT) {
    if (st == PGRES_COPY_IN) {
      PQputCopyEnd(conn, "dbstep cannot feed COPY ... FROM STDIN; use INSERT or COPY FROM a file");
    } else {
      char* buf = nullptr;
      while (PQgetCopyData(conn, &buf, 0) > 0) PQfreemem(buf);
    }
    std::optional<SqlFailure> failed;
    while (PGresult* next = PQgetResult(conn)) {
      ResultPtr n(next);
      if (PQresultStatus(next) == PGRES_FATAL_ERROR && !failed) failed = failure_of(conn, next);
    }
    return failed;
  }
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_EMPTY_QUERY) {
    return std::nullopt;
  }
  return failure_of(conn, r.get());
}

}  // namespace

Pipeline::Pipeline(Connection& conn, bool pipelined) : conn_(conn), pipelined_(pipelined) {
  PGconn* c = conn_.raw();
  if (pipelined_ && (!PQenterPipelineMode(c) || PQsetnonblocking(c, 1) != 0)) {
    fail_now(failure_of(c, nullptr));
  }
}

Pipeline::~Pipeline() {
  if (pipelined_) finish();
}

void Pipeline::add(const std::string& sql) {
  const std::size_t index = count_++;
  if (failure_) return;
  PGconn* c = conn_.raw();
  if (!pipelined_) {
    if (auto failed = run(c, sql)) {
      failure_ = Failure{index, *failed};
    } else if (PQtransactionStatus(c) == PQTRANS_IDLE) {
      committed_ = true;
    }
    return;
  }
  if (!PQsendQueryParams(c, sql.c_str(), 0, nullptr, nullptr, nullptr, nullptr, 0)) {
    fail_now(failure_of(c, nullptr), index);
    return;
  }
  ++sent_;
}

void Pipeline::add_statements(const Step& step, const Script& script) {
  for (const auto& st : script.statements) add(step.sql.substr(st.offset, st.length));
}

std::optional<Pipeline::Failure> Pipeline::finish() {
  if (!pipelined_ || finished_) return failure_;
  finished_ = true;
  PGconn* c = conn_.raw();
  if (!broken_ && (!PQpipelineSync(c) || !flush())) fail_now(failure_of(c, nullptr));
  PQsetnonblocking(c, 0);
  if (!broken_) {
    for (std::size_t i = 0; i < sent_; ++i) {
      while (PGresult* next = PQgetResult(c)) {
        ResultPtr r(next);
        if (PQresultStatus(next) == PGRES_FATAL_ERROR && !failure_) {
          failure_ = Failure{i, failure_of(c, next)};
        }
      }
    }
    ResultPtr sync(PQgetResult(c));  // PGRES_PIPELINE_SYNC
  }
  if (!PQexitPipelineMode(c) && !failure_) {
    failure_ = Failure{sent_, failure_of(c, nullptr)};
  }
  return failure_;
}

void Pipeline::fail_now(SqlFailure why, std::optional<std::size_t> index) {
  broken_ = true;
  if (!failure_) failure_ = Failure{index.value_or(sent_), std::move(why)};
}

// Writes out what libpq holds, reading meanwhile what the server answers: the server stops
// reading queries when nobody reads its results, so waiting only to write could deadlock.
bool Pipeline::flush() {
  PGconn* c = conn_.raw();
  for (;;) {
    int left = PQflush(c);
    if (left == 0) return true;
    if (left < 0) return false;
    pollfd p{PQsocket(c), POLLIN | POLLOUT, 0};
    if (poll(&p, 1, -1) < 0 && errno != EINTR) return false;
    if ((p.revents & POLLIN) && !PQconsumeInput(c)) return false;
  }
}

Error migration_error(const Connection& conn, const Step& step, const Statement* st,
                      const SqlFailure& f, std::string_view at) {
  const std::string& text = step.sql;
  std::string where;
  TextPosition pos{0, 0};
  std::string statement;
  if (st) {
    std::string_view sv = std::string_view(text).substr(st->offset, st->length);
    const std::size_t start = skip_blank(sv, 0, SqlDialect::kPostgres);
    statement = trim(sv.substr(start));
    std::size_t offset;
    if (f.position > 0) {
      // PostgreSQL counts characters from 1 in the text we sent: this statement.
      offset = st->offset + byte_offset_of_char(sv, static_cast<std::size_t>(f.position - 1));
      pos = position_at(text, offset);
      where = fmt::format("at line {}, column {}", pos.line, pos.column);
    } else {
      offset = st->offset + start;
      pos = position_at(text, offset);
      where = fmt::format("in the statement at line {}, column {}", pos.line, pos.column);
    }
  } else {
    where = std::string(at);
  }
  std::string msg = f.message;
  if (!f.sqlstate.empty()) msg += fmt::format(" (SQLSTATE {})", f.sqlstate);
  if (!f.detail.empty()) msg += "; detail: " + one_line(f.detail);
  if (!f.hint.empty()) msg += "; hint: " + one_line(f.hint);
  if (!f.context.empty()) msg += "; context: " + one_line(f.context);
  Error e(ErrorCode::kMigrationFailed,
          conn.scrub(fmt::format("migration {} ({}) failed {}: {}", step.version, step.file,
                                 where, msg)));
  e.file = step.file;
  e.version = step.version;
  e.line = pos.line;
  e.column = pos.column;
  e.sqlstate = f.sqlstate;
  e.detail = conn.scrub(f.verbose);
  e.statement = conn.scrub(statement_excerpt(statement, 2000));
  return e;
}

Error statement_error(const Connection& conn, const Step& step, const Script& script,
                      std::size_t index, const SqlFailure& f) {
  if (index < script.statements.size()) {
    return migration_error(conn, step, &script.statements[index], f);
  }
  return migration_error(conn, step, nullptr, f, "at its end");
}

}  // namespace dbstep::drivers::pg
