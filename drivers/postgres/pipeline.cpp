#include "drivers/postgres/pipeline.hpp"

#include <fmt/format.h>
#include <libpq-fe.h>
#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
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

// Whether `text` is well-formed UTF-8 as PostgreSQL's pg_utf8_islegal() judges it: no overlong
// form, no surrogate, nothing past U+10FFFF, no NUL.
// Whether the server reads one message of the statements as libpg_query split them, with
// positions counted in UTF-8 characters as the mapping back assumes: client and server encoding
// UTF8, and standard_conforming_strings on (off, '\' in a string is an escape, and a string can
// run on past where the split ended the statement). Parameters the server reports to libpq as
// they change: no round trip.
bool one_query_reads_as_split(PGconn* c) {
  auto is = [&](const char* name, std::string_view want) {
    const char* v = PQparameterStatus(c, name);
    return v && std::string_view(v) == want;
  };
  return std::string_view(pg_encoding_to_char(PQclientEncoding(c))) == "UTF8" &&
         is("server_encoding", "UTF8") && is("standard_conforming_strings", "on");
}

bool valid_utf8(std::string_view text) {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const auto* end = p + text.size();
  while (p < end) {
    // Eight ASCII bytes at a time, none of them NUL: most SQL is all ASCII.
    if (end - p >= 8) {
      std::uint64_t w;
      std::memcpy(&w, p, 8);
      constexpr std::uint64_t kLow = 0x0101010101010101u, kHigh = 0x8080808080808080u;
      if (((w | ((w - kLow) & ~w)) & kHigh) == 0) {
        p += 8;
        continue;
      }
    }
    const unsigned char c = *p;
    if (c < 0x80) {
      if (c == 0) return false;
      ++p;
      continue;
    }
    std::size_t n;
    unsigned char lo = 0x80, hi = 0xBF;  // the second byte's range
    if (c >= 0xC2 && c <= 0xDF) {
      n = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      n = 3;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      n = 4;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    } else {
      return false;
    }
    if (static_cast<std::size_t>(end - p) < n || p[1] < lo || p[1] > hi) return false;
    for (std::size_t i = 2; i < n; ++i) {
      if ((p[i] & 0xC0) != 0x80) return false;
    }
    p += n;
  }
  return true;
}

// The characters of UTF-8 `text`: its bytes that do not continue a character.
std::size_t utf8_chars(std::string_view text) {
  std::size_t n = 0;
  for (char c : text) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return n;
}

// Above this a migration travels as one query per statement: one simple-query message is
// bounded by the server (1 GB), and a file this size gains nothing from one message.
constexpr std::size_t kOneQueryMaxBytes = std::size_t{64} << 20;

}  // namespace

Pipeline::Mode Pipeline::mode_for(const Step& step, const Script& script) {
  if (!script.pipelinable) return Mode::kOneByOne;
  return step.sql.size() > kOneQueryMaxBytes ? Mode::kPipelined : Mode::kOneQuery;
}

Pipeline::Pipeline(Connection& conn, Mode mode)
    : conn_(conn), mode_(mode), pipelined_(mode == Mode::kPipelined) {
  if (mode_ == Mode::kOneQuery) {
    starts_.push_back(0);
    return;
  }
  start_pipeline();
}

void Pipeline::start_pipeline() {
  PGconn* c = conn_.raw();
  if (pipelined_ && (!PQenterPipelineMode(c) || PQsetnonblocking(c, 1) != 0)) {
    fail_now(failure_of(c, nullptr));
  }
}

Pipeline::~Pipeline() {
  // kOneQuery unfinished has sent nothing: nothing to read.
  if (pipelined_) finish();
}

void Pipeline::add(std::string_view sql) {
  const std::size_t index = count_++;
  if (failure_) return;
  if (mode_ == Mode::kOneQuery) {
    // "\n;" ends the statement even after a trailing -- comment.
    text_.append(sql);
    text_.append("\n;");
    starts_.push_back(text_.size());
    return;
  }
  PGconn* c = conn_.raw();
  if (!pipelined_) {
    if (auto failed = run(c, std::string(sql))) {
      failure_ = Failure{index, *failed};
    } else if (PQtransactionStatus(c) == PQTRANS_IDLE) {
      committed_ = true;
    }
    return;
  }
  send(sql, index);
}

void Pipeline::send(std::string_view sql, std::size_t index) {
  PGconn* c = conn_.raw();
  if (!PQsendQueryParams(c, std::string(sql).c_str(), 0, nullptr, nullptr, nullptr, nullptr, 0)) {
    fail_now(failure_of(c, nullptr), index);
    return;
  }
  ++sent_;
}

void Pipeline::add_statements(const Step& step, const Script& script) {
  for (const auto& st : script.statements) {
    add(std::string_view(step.sql).substr(st.offset, st.length));
  }
}

void Pipeline::finish_one_query() {
  PGconn* c = conn_.raw();
  if (count_ == 0) return;
  if (!PQsendQuery(c, text_.c_str())) {
    failure_ = Failure{0, failure_of(c, nullptr)};
    return;
  }
  // One result per statement, in order, until the first failure; then nothing but the end.
  std::size_t done = 0;
  while (PGresult* next = PQgetResult(c)) {
    ResultPtr r(next);
    const ExecStatusType st = PQresultStatus(next);
    if (failure_) continue;
    if (st == PGRES_FATAL_ERROR) {
      SqlFailure why = failure_of(c, next);
      std::size_t index = std::min(done, count_ - 1);
      // The server counts characters: where each query starts, in characters (only now: a
      // migration that succeeds never needs it).
      std::vector<std::size_t> starts(starts_.size(), 0);
      for (std::size_t q = 1; q < starts_.size(); ++q) {
        starts[q] = starts[q - 1] + utf8_chars(std::string_view(text_).substr(
                                        starts_[q - 1], starts_[q] - starts_[q - 1]));
      }
      if (done == 0 && why.position > 0) {
        // Nothing ran: the server could not parse the text. Its position says where.
        const auto at = static_cast<std::size_t>(why.position - 1);
        while (index + 1 < count_ && starts[index + 1] <= at) ++index;
      }
      // The position as the failing query alone would have it, or none when it lies outside it
      // (a function body's error is placed by searching the whole text for the body).
      if (why.position > 0) {
        const auto at = static_cast<std::size_t>(why.position - 1);
        why.position = at >= starts[index] && at < starts[index + 1]
                           ? static_cast<int>(at - starts[index] + 1)
                           : 0;
      }
      failure_ = Failure{index, std::move(why)};
    } else if (st == PGRES_COPY_IN || st == PGRES_COPY_OUT) {
      // Never sent here (mode_for() keeps COPY out); refused all the same, never waited on.
      if (st == PGRES_COPY_IN) PQputCopyEnd(c, "dbstep cannot feed COPY ... FROM STDIN");
      char* buf = nullptr;
      while (st == PGRES_COPY_OUT && PQgetCopyData(c, &buf, 0) > 0) PQfreemem(buf);
    } else {
      ++done;
    }
  }
}

std::optional<Pipeline::Failure> Pipeline::finish() {
  if (mode_ == Mode::kOneQuery && !finished_) {
    PGconn* c = conn_.raw();
    if (one_query_reads_as_split(c) && valid_utf8(text_)) {
      finished_ = true;
      finish_one_query();
      return failure_;
    }
    // The server would refuse the whole message, with nothing to say which query held the
    // byte it cannot read (or, in another encoding, count positions otherwise, or, with
    // standard_conforming_strings off, read a backslash in a string as an escape that
    // libpg_query's split did not): one extended-protocol query each, as kPipelined.
    mode_ = Mode::kPipelined;
    pipelined_ = true;
    start_pipeline();
    for (std::size_t i = 0; i < count_ && !failure_; ++i) {
      const std::size_t from = starts_[i], to = starts_[i + 1] - 2;  // less "\n;"
      send(std::string_view(text_).substr(from, to - from), i);
    }
  }
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
