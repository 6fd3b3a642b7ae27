#pragma once
// One connection to a PostgreSQL server, opened by libpqxx from a postgres:// URL, and the way
// the driver's own queries (everything but a migration's statements: pipeline.hpp) run on it.
//
// URL -> connection string: conninfo.hpp.
//
// libpqxx opens the connection (pqxx::connection_base with a connection policy of ours), runs
// the queries and throws its error classes, which exec() turns into dbstep::Error. libpqxx 6.4
// has no pipeline mode, no error fields beyond SQLSTATE, and a cancel that allocates; for those
// raw() hands out the PGconn* that libpqxx opened (the policy sees it connect), never a second
// connection. libpqxx's automatic reconnection is off: a lost connection would silently drop
// the session's advisory lock, so it is an error instead.
//
// Used from one thread; interrupt() alone may come from a signal handler or another thread.
// Every message is scrubbed of the URL's passwords.

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <pqxx/connection_base>
#include <pqxx/except>
#include <pqxx/result>

#include "core/error.hpp"
#include "core/url.hpp"

typedef struct pg_conn PGconn;
typedef struct pg_cancel PGcancel;

namespace dbstep::drivers::pg {

// A failed command, with the server's fields (empty when the failure was on the client side,
// e.g. a lost connection).
struct SqlFailure {
  std::string sqlstate;
  std::string message;  // primary message
  std::string detail;
  std::string hint;
  std::string context;
  int position = 0;     // 1-based character in the query sent, 0 when none
  std::string verbose;  // the whole report, as psql would print it
};

// The fields of libpqxx's exception (SQLSTATE from sql_error, the rest from its text: libpq's
// report, "ERROR:  message\nDETAIL:  ...\nHINT:  ...").
SqlFailure failure_of(const pqxx::failure& e);

// Text on one line: libpq's messages span lines ("...failed: X\n\tIs the server running...").
std::string one_line(std::string_view s);
std::string trim(std::string_view s);

// A server message that is not an error (RAISE NOTICE, WARNING ...): its severity word as the
// server sends it ("NOTICE", "WARNING", "INFO", "LOG", "DEBUG") and its text.
using NoticeHandler = std::function<void(std::string_view severity, std::string_view text)>;

class Connection {
 public:
  // Connects. Throws Error(kDatabase) "cannot connect to PostgreSQL at <url>: <why>". Without
  // `wait`, only starts to, sending what libpq sends before the server's first answer (with no
  // connect_timeout in play: bounded_by_libpq() in connection.cpp): the server starts the session
  // meanwhile, and finish_connecting() must come before anything else.
  explicit Connection(const Url& url, bool wait = true);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Waits for the connection a Connection(url, false) started; throws as the constructor does.
  // Nothing once connected. A started connection that fails after a second or more (the
  // server's authentication_timeout may have ended it while the caller worked) is made once
  // more with libpq's blocking connect.
  void finish_connecting();

  // The URL without its x- parameters and with any password hidden.
  const std::string& described() const { return described_; }
  // golang-migrate's purl.Path ("/db") for URLs; empty for key=value strings.
  const std::string& url_path() const { return url_path_; }
  // Hides every password of the URL in `text`.
  std::string scrub(std::string_view text) const;

  // The handle libpqxx opened, for libpq calls libpqxx 6.4 has no word for (pipeline.hpp).
  PGconn* raw() const;

  // Runs `sql` (one or more statements; the last one's result) in autocommit as it stands:
  // inside the transaction a BEGIN opened, if any. On failure rolls back that transaction and
  // throws Error(kDatabase) saying what the driver was `doing`.
  pqxx::result exec(const std::string& sql, std::string_view doing);
  // The same with $1, $2 ... bound to `params` (text).
  pqxx::result exec_params(const std::string& sql, const std::vector<std::string>& params,
                           std::string_view doing);
  // A query's result, or its failure (then the result is empty).
  using QueryResult = std::pair<pqxx::result, std::optional<SqlFailure>>;
  // Runs `sql` and hands back the failure instead of throwing (the transaction, if one was
  // open, is then aborted: the caller decides).
  QueryResult try_exec(const std::string& sql);
  QueryResult try_exec_params(const std::string& sql, const std::vector<std::string>& params);
  // Runs `queries` in ONE message, in order (libpqxx's pipeline, in autocommit: the server runs
  // them as one implicit transaction): one QueryResult per query that ran, the last holding the
  // failure if one failed. Nothing after a failure runs; a failure leaves no transaction open.
  std::vector<QueryResult> try_exec_each(const std::vector<std::string>& queries);

  // Whether a transaction is open on the session (BEGIN sent, no COMMIT/ROLLBACK yet).
  bool in_transaction() const;
  // ROLLBACK if a transaction is open; never throws.
  void rollback_quietly() noexcept;
  // Error(kDatabase) "<doing> on <url> failed: <message> (SQLSTATE ...); detail: ...; hint: ...".
  [[noreturn]] void fail(std::string_view doing, const SqlFailure& f) const;

  // The backend pid the server gave at login (libpqxx's backendpid(), libpq's PQbackendPID()).
  int backend_pid() const;
  // The server's version as libpq gives it (150004 for 15.4).
  int server_version() const;

  // An identifier quoted for SQL ("name", quotes doubled), by libpqxx.
  std::string quote_name(std::string_view name);
  // A text literal ('it''s') and a bytea literal, by libpqxx, for this connection's settings.
  std::string quote(std::string_view text);
  std::string quote_bytes(std::string_view bytes);

  // Where the server's notices go (none: they are dropped). Replaces the previous handler.
  void set_notice_handler(NoticeHandler handler);

  // Asks the server to cancel what the session runs now (PQcancel over a connection of its own,
  // made ready at connect time). Async-signal-safe; best effort; never throws.
  void interrupt() noexcept;

 private:
  class Session;      // libpqxx's connection with our connection policy
  class NoticeSink;   // libpqxx's errorhandler, forwarding to the NoticeHandler

  Error connect_error(const std::exception& e) const;

  std::string conninfo_;  // what libpq gets (passwords included: never in a message)
  // When a Connection(url, false) started connecting (nullopt: it connected at once).
  std::optional<std::chrono::steady_clock::time_point> started_at_;
  std::vector<std::string> secrets_;  // passwords to hide in every message
  std::string url_path_;
  std::string described_;
  std::unique_ptr<Session> session_;
  std::unique_ptr<NoticeSink> notices_;
  // interrupt()'s cancel request, made once the connection is up: PQcancel on it is
  // async-signal-safe, where PQgetCancel (and libpqxx's cancel_query) are not.
  PGcancel* cancel_ = nullptr;
  bool connected_ = false;  // finish_connecting() done
};

}  // namespace dbstep::drivers::pg
