#include "drivers/postgres/connection.hpp"

#include <fmt/format.h>
#include <libpq-fe.h>
#include <poll.h>

#include <cctype>
#include <cerrno>
#include <chrono>

#include <pqxx/connection_base>
#include <pqxx/connectionpolicy>
#include <pqxx/errorhandler>
#include <pqxx/nontransaction>
#include <pqxx/pipeline>

#include "core/error.hpp"
#include "core/url.hpp"
#include "drivers/postgres/conninfo.hpp"

namespace dbstep::drivers::pg {

namespace {

// Waits until libpq's socket is ready for reading or writing (a signal's EINTR waits on).
void wait_for(PGconn* c, bool reading) {
  pollfd p{PQsocket(c), static_cast<short>(reading ? POLLIN : POLLOUT), 0};
  while (p.fd >= 0 && ::poll(&p, 1, -1) < 0 && errno == EINTR) {
  }
}

// libpqxx's connection policies in one, remembering the handle it opens: libpqxx 6.4's public way
// to reach the PGconn* (the policy is handed every handle the connection opens and closes).
// Blocking, it connects as libpqxx's connect_direct does (PQconnectdb). Started, it connects as
// its connect_async does (PQconnectStart, then PQconnectPoll until done), except that the start
// already sends the startup packet: the server then starts the session (a new backend process,
// its catalog caches) while the caller works, until libpqxx's activate() finishes.
class HandlePolicy final : public pqxx::connectionpolicy {
 public:
  HandlePolicy(const std::string& options, bool started)
      : pqxx::connectionpolicy(options), started_(started) {}
  handle do_startconnect(handle orig) override {
    if (orig) return orig;
    handle_ = started_ ? start() : normalconnect(orig);
    return handle_;
  }
  handle do_completeconnect(handle orig) override {
    if (!connecting_) return orig;
    connecting_ = false;  // for better or worse, as connect_async
    for (auto st = polled_; st != PGRES_POLLING_OK; st = PQconnectPoll(orig)) {
      if (st == PGRES_POLLING_FAILED) throw pqxx::broken_connection(PQerrorMessage(orig));
      wait_for(orig, st == PGRES_POLLING_READING);
    }
    return orig;
  }
  handle do_dropconnect(handle orig) noexcept override {
    handle_ = nullptr;
    connecting_ = false;
    return pqxx::connectionpolicy::do_dropconnect(orig);
  }
  handle do_disconnect(handle orig) noexcept override {
    handle_ = nullptr;
    connecting_ = false;
    return pqxx::connectionpolicy::do_disconnect(orig);
  }
  bool is_ready(handle h) const noexcept override { return h != nullptr && !connecting_; }
  handle raw() const { return handle_; }

 private:
  handle start() {
    handle h = PQconnectStart(options().c_str());
    if (!h) throw std::bad_alloc();
    // libpq's loop, run until it waits for the server's first answer (or is done).
    PostgresPollingStatusType st = PGRES_POLLING_WRITING;
    if (PQstatus(h) != CONNECTION_BAD) {
      while (st == PGRES_POLLING_WRITING) {
        wait_for(h, false);
        st = PQconnectPoll(h);
      }
    }
    if (PQstatus(h) == CONNECTION_BAD || st == PGRES_POLLING_FAILED) {
      const std::string why = PQerrorMessage(h);
      PQfinish(h);
      throw pqxx::broken_connection(why);
    }
    polled_ = st;
    connecting_ = st != PGRES_POLLING_OK;
    return h;
  }

  bool started_;
  bool connecting_ = false;
  PostgresPollingStatusType polled_ = PGRES_POLLING_OK;
  handle handle_ = nullptr;
};

// Starts with "SEVERITY:  " (libpq's report of an error or notice): the severity.
std::string_view severity_of(std::string_view line) {
  auto colon = line.find(":  ");
  if (colon == std::string_view::npos || colon == 0 || colon > 12) return {};
  for (char c : line.substr(0, colon)) {
    if (!std::isupper(static_cast<unsigned char>(c))) return {};
  }
  return line.substr(0, colon);
}

// libpqxx's own complaint (usage_error, conversion_error ...), not the server's.
SqlFailure client_failure(const std::exception& e) {
  SqlFailure f;
  f.message = one_line(e.what());
  f.verbose = f.message;
  return f;
}

}  // namespace

std::string trim(std::string_view s) {
  std::size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return std::string(s.substr(b, e - b));
}

std::string one_line(std::string_view s) {
  std::string out;
  bool space = false;
  for (char c : trim(s)) {
    if (c == '\n' || c == '\r' || c == '\t') {
      space = true;
      continue;
    }
    if (space && !out.empty()) out += ' ';
    space = false;
    out += c;
  }
  return out;
}

// The SQLSTATE libpqxx 6.4 threw a class for, where it leaves sqlstate() empty (it builds
// insufficient_privilege and the transaction_rollback family without the code).
static std::string sqlstate_of_class(const pqxx::failure& e) {
  if (dynamic_cast<const pqxx::insufficient_privilege*>(&e)) return "42501";
  if (dynamic_cast<const pqxx::serialization_failure*>(&e)) return "40001";
  if (dynamic_cast<const pqxx::deadlock_detected*>(&e)) return "40P01";
  if (dynamic_cast<const pqxx::statement_completion_unknown*>(&e)) return "40003";
  if (dynamic_cast<const pqxx::transaction_rollback*>(&e)) return "40000";
  if (dynamic_cast<const pqxx::too_many_connections*>(&e)) return "53300";
  if (dynamic_cast<const pqxx::disk_full*>(&e)) return "53100";
  if (dynamic_cast<const pqxx::out_of_memory*>(&e)) return "53200";
  if (dynamic_cast<const pqxx::plpgsql_raise*>(&e)) return "P0001";
  if (dynamic_cast<const pqxx::plpgsql_no_data_found*>(&e)) return "P0002";
  if (dynamic_cast<const pqxx::plpgsql_too_many_rows*>(&e)) return "P0003";
  return {};
}

SqlFailure failure_of(const pqxx::failure& e) {
  SqlFailure f;
  if (const auto* s = dynamic_cast<const pqxx::sql_error*>(&e)) f.sqlstate = s->sqlstate();
  if (f.sqlstate.empty()) f.sqlstate = sqlstate_of_class(e);
  const std::string text = e.what();
  f.verbose = trim(text);
  if (severity_of(text).empty()) {
    // Not the server's report: libpq's or libpqxx's own words (a lost connection ...).
    f.message = one_line(text);
    if (f.message.empty()) f.message = "unknown error from libpqxx";
    f.verbose = f.message;
    return f;
  }
  // libpq's report, field by field: "ERROR:  message", "DETAIL:  ...", "HINT:  ...",
  // "CONTEXT:  ..." and "LINE n: ..." with its caret; a line of none of these continues the
  // field before it.
  std::string* current = &f.message;
  bool first = true;
  std::size_t at = 0;
  while (at <= text.size()) {
    std::size_t end = text.find('\n', at);
    if (end == std::string::npos) end = text.size();
    std::string_view line = std::string_view(text).substr(at, end - at);
    at = end + 1;
    if (first) {
      f.message = std::string(line.substr(severity_of(line).size() + 3));
      first = false;
      continue;
    }
    if (line.rfind("DETAIL:  ", 0) == 0) {
      current = &f.detail;
      *current = line.substr(9);
    } else if (line.rfind("HINT:  ", 0) == 0) {
      current = &f.hint;
      *current = line.substr(7);
    } else if (line.rfind("CONTEXT:  ", 0) == 0) {
      current = &f.context;
      *current = line.substr(10);
    } else if (line.rfind("LINE ", 0) == 0 || line.rfind("QUERY:  ", 0) == 0) {
      current = nullptr;  // the query quoted back, and its caret on the next line
    } else if (current && !line.empty()) {
      *current += "\n";
      *current += line;
    }
  }
  f.message = trim(f.message);
  return f;
}

class Connection::Session final : public pqxx::connection_base {
 public:
  Session(const std::string& conninfo, bool started)
      : pqxx::connection_base(policy_), policy_(conninfo, started) {
    init();  // connects, or starts to (then activate() finishes)
  }
  ~Session() noexcept { close(); }
  PGconn* raw() const { return policy_.raw(); }

 private:
  HandlePolicy policy_;
};

class Connection::NoticeSink final : public pqxx::errorhandler {
 public:
  explicit NoticeSink(pqxx::connection_base& c) : pqxx::errorhandler(c) {}
  bool operator()(const char msg[]) noexcept override {
    if (!handler_) return false;
    try {
      std::string_view text(msg);
      std::string_view severity = severity_of(text);
      if (!severity.empty()) text.remove_prefix(severity.size() + 3);
      while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.remove_suffix(1);
      handler_(severity.empty() ? std::string_view("NOTICE") : severity, text);
    } catch (...) {
      // A handler's failure must not unwind through libpq.
    }
    return false;
  }
  NoticeHandler handler_;
};

Connection::Connection(const Url& url, bool wait) {
  ConnectSpec spec = connect_spec(url);
  secrets_ = std::move(spec.secrets);
  url_path_ = std::move(spec.url_path);
  described_ = scrub(url.without_custom_params());
  conninfo_ = std::move(spec.conninfo);
  const bool started = !wait && !bounded_by_libpq(conninfo_);
  try {
    session_ = std::make_unique<Session>(conninfo_, started);
  } catch (const std::exception& e) {
    throw connect_error(e);
  }
  if (started) started_at_ = std::chrono::steady_clock::now();
  if (wait) finish_connecting();
}

Error Connection::connect_error(const std::exception& e) const {
  return Error(ErrorCode::kDatabase, fmt::format("cannot connect to PostgreSQL at {}: {}",
                                                 described_, scrub(one_line(e.what()))));
}

void Connection::finish_connecting() {
  if (connected_) return;
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  try {
    session_->activate();
  } catch (const std::exception& e) {
    // The server gives a client authentication_timeout (1 s at least, 60 s by default) to get
    // through TLS and authentication: a connection started before a long wait may have run out
    // of it. Once more then, as libpq's blocking connect; a failure sooner is the answer.
    using namespace std::chrono_literals;
    if (!started_at_ || std::chrono::steady_clock::now() - *started_at_ < 1s) {
      throw connect_error(e);
    }
    try {
      session_ = std::make_unique<Session>(conninfo_, false);
      session_->activate();
    } catch (const std::exception& again) {
      throw connect_error(again);
    }
  }
  session_->inhibit_reactivation(true);
#pragma GCC diagnostic pop
  // Registered first, so notices are dropped (not printed by libpq) until someone listens.
  notices_ = std::make_unique<NoticeSink>(*session_);
  cancel_ = PQgetCancel(raw());
  connected_ = true;
}

Connection::~Connection() {
  if (cancel_) PQfreeCancel(cancel_);
  notices_.reset();
}

PGconn* Connection::raw() const { return session_->raw(); }

std::string Connection::scrub(std::string_view text) const {
  // The exact secrets first: the generic URL redaction could otherwise cut a password that holds
  // '@' or '/' and leave part of it.
  std::string s(text);
  for (const auto& secret : secrets_) {
    if (secret.size() < 3) continue;  // too short to tell from ordinary text
    for (auto at = s.find(secret); at != std::string::npos; at = s.find(secret, at + 5)) {
      s.replace(at, secret.size(), "xxxxx");
    }
  }
  return redact_secrets(s);
}

void Connection::fail(std::string_view doing, const SqlFailure& f) const {
  std::string msg = f.message;
  if (!f.sqlstate.empty()) msg += fmt::format(" (SQLSTATE {})", f.sqlstate);
  if (!f.detail.empty()) msg += "; detail: " + f.detail;
  if (!f.hint.empty()) msg += "; hint: " + f.hint;
  Error e(ErrorCode::kDatabase, scrub(fmt::format("{} on {} failed: {}", doing, described_, msg)));
  e.sqlstate = f.sqlstate;
  e.detail = scrub(f.verbose);
  throw e;
}

namespace {

// Runs `query` (libpqxx calls), handing back its failure instead of throwing: libpqxx's failure
// classes and client-side errors (a usage error) as a SqlFailure; dbstep's own Errors pass.
template <typename Query>
std::optional<SqlFailure> failure_in(Query&& query) {
  try {
    query();
    return std::nullopt;
  } catch (const pqxx::failure& e) {
    return failure_of(e);
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    return client_failure(e);
  }
}

}  // namespace

Connection::QueryResult Connection::try_exec(const std::string& sql) {
  return try_exec_params(sql, {});
}

Connection::QueryResult Connection::try_exec_params(const std::string& sql,
                                                    const std::vector<std::string>& params) {
  QueryResult out;
  out.second = failure_in([&] {
    pqxx::nontransaction tx(*session_);
    switch (params.size()) {
      case 0:
        out.first = tx.exec(sql);
        break;
      case 1:
        out.first = tx.exec_params(sql, params[0]);
        break;
      case 2:
        out.first = tx.exec_params(sql, params[0], params[1]);
        break;
      default:
        throw Error(ErrorCode::kInternal, "exec_params: more than two parameters");
    }
  });
  return out;
}

std::vector<Connection::QueryResult> Connection::try_exec_each(
    const std::vector<std::string>& queries) {
  std::vector<QueryResult> out;
  std::optional<SqlFailure> failed = failure_in([&] {
    pqxx::nontransaction tx(*session_);
    pqxx::pipeline p(tx);
    // Held back until all are in, then issued together: one message.
    p.retain(static_cast<int>(queries.size()));
    std::vector<pqxx::pipeline::query_id> ids;
    ids.reserve(queries.size());
    for (const auto& q : queries) ids.push_back(p.insert(q));
    p.resume();
    try {
      for (const auto id : ids) out.emplace_back(p.retrieve(id), std::nullopt);
    } catch (...) {
      // The pipeline reads what is still due, so that its destructor does not send a cancel
      // request (a new connection to the server) for the queries the server skipped.
      try {
        p.complete();
      } catch (...) {
      }
      throw;
    }
    p.complete();
  });
  if (failed) out.emplace_back(pqxx::result(), std::move(failed));
  // libpqxx's pipeline can hand back a failure before libpq has read the server's ReadyForQuery:
  // read up to it, so the session is idle (a ROLLBACK sent now would find it busy, and the server
  // would warn of no transaction in progress).
  if (PGconn* c = raw()) {
    while (PGresult* r = PQgetResult(c)) PQclear(r);
  }
  return out;
}

pqxx::result Connection::exec(const std::string& sql, std::string_view doing) {
  return exec_params(sql, {}, doing);
}

pqxx::result Connection::exec_params(const std::string& sql,
                                     const std::vector<std::string>& params,
                                     std::string_view doing) {
  auto [r, failed] = try_exec_params(sql, params);
  if (failed) {
    rollback_quietly();
    fail(doing, *failed);
  }
  return std::move(r);
}

bool Connection::in_transaction() const {
  PGconn* c = raw();
  return c && PQtransactionStatus(c) != PQTRANS_IDLE;
}

void Connection::rollback_quietly() noexcept {
  PGconn* c = raw();
  if (c && PQstatus(c) == CONNECTION_OK && PQtransactionStatus(c) != PQTRANS_IDLE) {
    try {
      pqxx::nontransaction tx(*session_);
      tx.exec("ROLLBACK");
    } catch (...) {
      // The session is gone or broken: nothing is left open on it either way.
    }
  }
}

int Connection::backend_pid() const { return session_->backendpid(); }

int Connection::server_version() const { return session_->server_version(); }

std::string Connection::quote_name(std::string_view name) {
  // PQescapeIdentifier stops at a NUL, as the server would.
  return session_->quote_name(std::string(name.substr(0, name.find('\0'))));
}

std::string Connection::quote(std::string_view text) {
  return session_->quote(std::string(text));
}

std::string Connection::quote_bytes(std::string_view bytes) {
  return session_->quote_raw(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size());
}

void Connection::set_notice_handler(NoticeHandler handler) {
  notices_->handler_ = std::move(handler);
}

void Connection::interrupt() noexcept {
  // Asks the postmaster, over a connection of its own, to cancel whatever this session's
  // backend is running. A migration's statements already sit in the server's input (one
  // pipeline), so closing our end alone would not stop them: the cancel fails the running
  // statement, which aborts the transaction, and the rest of the pipeline, COMMIT included, is
  // skipped.
  if (cancel_) {
    char errbuf[256];  // a local buffer: what makes PQcancel safe in a signal handler
    [[maybe_unused]] int sent = PQcancel(cancel_, errbuf, sizeof errbuf);
  }
}

}  // namespace dbstep::drivers::pg
