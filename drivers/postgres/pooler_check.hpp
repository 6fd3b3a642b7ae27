#pragma once
// Whether a session advisory lock can hold on this connection, or a connection pooler sits
// between dbstep and PostgreSQL and would make it hold nothing.
//
// A pooler in transaction mode (PgBouncer's pool_mode = transaction, pgcat, Odyssey, Supavisor
// ...) hands each transaction of a client whatever server session is free. A session advisory
// lock taken by one transaction then stays behind on that server session, the migrations run on
// others, and another client handed the same server session "takes" the same lock again: the
// lock excludes nobody, and it is released on the wrong session or never. golang-migrate runs
// unlocked there without a word; dbstep refuses and says to use x-lock-strategy=table.
//
// How a pooler is told, at no cost: at login PostgreSQL sends the client its backend's process
// id with the cancel key (BackendKeyData; libpq's PQbackendPID(), libpqxx's backendpid()). A
// pooler cannot hand on a server session's key, since a client has no server session of its own,
// so it makes one up: PgBouncer gives every client 8 random bytes, in every pool mode. So when
// that pid is not the server's pg_backend_pid() (read in a query the driver sends anyway), a
// pooler is in between. A plain TCP relay (HAProxy in TCP mode, an SSH tunnel, Docker's port
// mapping) passes the key through and is, rightly, not a pooler: the session stays whole. Its
// client address differs from ours all the same, which is why the address is not what is
// compared.
//
// What cannot be told: the pool mode. A session-mode pooler keeps one server session per client,
// so the advisory lock holds there, but its made-up key looks the same. x-pooler=session says
// so, and keeps the advisory lock; each migration's transaction then checks that its server
// session holds the lock (migration_check_sql), which fails the migration, with nothing applied,
// when the pooler was in transaction mode after all and handed the transaction another session.
// x-pooler=transaction refuses the advisory lock even where nothing is detected.
//
// Pure: no connection, no libpq or libpqxx. Cheap to copy; used from the driver's thread.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"
#include "core/url.hpp"

namespace dbstep::drivers::pg {

class PoolerCheck {
 public:
  // What x-pooler says about the connection.
  enum class Mode {
    kDetect,       // absent: a pooler is detected from the session's pid
    kSession,      // x-pooler=session: any pooler keeps one server session per client
    kTransaction,  // x-pooler=transaction: sessions do not hold, whatever is detected
  };

  // Reads x-pooler from the URL. Throws Error(kInvalidArgument) naming the parameter and the
  // values it takes for any other value.
  explicit PoolerCheck(const Url& url);

  Mode mode() const { return mode_; }

  // Called by the advisory lock strategy before it takes the lock (once per connection is
  // enough: neither pid changes), with the pid libpq was given at login (PQbackendPID) and the
  // one the server reports for the session (SELECT pg_backend_pid()). Throws
  // Error(kInvalidArgument) when the advisory lock would not hold: a pooler is detected and
  // x-pooler=session does not vouch for it, or x-pooler=transaction. The message names
  // `described` (the URL, no password), says nothing was locked or changed, and how to go on
  // (x-lock-strategy=table). Remembers whether a pooler was seen, for migration_check_sql().
  void check_advisory_lock(int protocol_pid, int server_pid, std::string_view described);

  // Whether check_advisory_lock() saw a pooler (and x-pooler=session let the lock be taken).
  bool behind_pooler() const { return behind_pooler_; }

  // Whether the session's settings may land on a server session other clients share, and miss
  // the transactions that follow: x-pooler=transaction, or a pooler detected from the two pids
  // (as check_advisory_lock() compares them) that x-pooler=session does not vouch for. A session
  // SET must not be sent then; a SET LOCAL in each transaction is.
  bool shares_server_sessions(int protocol_pid, int server_pid) const {
    return mode_ == Mode::kTransaction || (mode_ == Mode::kDetect && protocol_pid != server_pid);
  }

  // One statement for each migration's transaction, sent with it (no round trip of its own),
  // that fails unless the server session running the transaction holds the advisory locks
  // `keys` (golang-migrate's keys, as the driver took them with pg_try_advisory_lock). Empty,
  // and nothing to send, unless the lock was taken behind a pooler (x-pooler=session): on a
  // direct connection the session is ours and the check would only cost time. Its failure is
  // told by is_lost_session() and reported with lost_session_error().
  std::string migration_check_sql(const std::vector<std::uint32_t>& keys) const;

  // Whether a server error message is migration_check_sql()'s failure.
  static bool is_lost_session(std::string_view message);

  // Error(kInvalidArgument): the migration's transaction ran on a server session that does not
  // hold the lock: the pooler is in transaction mode, not session mode; nothing of the migration
  // was applied. Says to use x-lock-strategy=table.
  static Error lost_session_error(std::string_view described);

 private:
  Mode mode_ = Mode::kDetect;
  bool behind_pooler_ = false;
};

}  // namespace dbstep::drivers::pg
