// PostgreSQL behind a real PgBouncer in transaction pooling mode (issue 12, item 5): the driver
// conformance suite and sixteen racing `dbstep migrate all` processes through it with
// x-lock-strategy=table; the default advisory lock refused there with a message saying what to
// do, the database untouched; x-pooler=session caught when the pooler pools transactions after
// all; and no named prepared statement ever sent (they break under transaction pooling).
//
// The pooler comes from DBSTEP_TEST_PGBOUNCER_URL (`scripts/pg-cluster.sh start-pgbouncer DIR`,
// started by scripts/test.sh), the server behind it from DBSTEP_TEST_POSTGRES_URL; without them
// every test here fails, never skips. That PgBouncer hands out its server connections round
// robin, so once a database's pool holds several, a client's consecutive transactions run on
// different server sessions: whatever leans on the session breaks here every time.

#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fmt/format.h>

#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "core/url.hpp"
#include "drivers/postgres/postgres_driver.hpp"
#include "tests/drivers/conformance.hpp"
#include "tests/e2e/race.hpp"
#include "tests/e2e/run.hpp"
#include "tests/e2e/target.hpp"
#include "tests/loopback.hpp"
#include "tests/postgres_server.hpp"
#include "tests/support.hpp"

namespace {

using namespace dbstep;
using namespace std::chrono_literals;
using dbstep::testing::capture_error;
using dbstep::testing::pgbouncer_server_url;
using dbstep::testing::PgConnection;
using dbstep::testing::up_step;
using dbstep::testing::url_with_database;

// The port of a pg-cluster.sh URL (postgres://user@127.0.0.1:PORT/...).
int port_of(const std::string& url) {
  const auto at = url.find("@127.0.0.1:");
  if (at == std::string::npos) throw std::runtime_error("not a 127.0.0.1 URL: " + url);
  return std::stoi(url.substr(at + std::string("@127.0.0.1:").size()));
}

std::string with_port(std::string url, int port) {
  const auto at = url.find("@127.0.0.1:") + std::string("@127.0.0.1:").size();
  url.replace(at, url.find('/', at) - at, std::to_string(port));
  return url;
}

std::string random_db() {
  static std::mt19937_64 rng(std::random_device{}());
  return "pgb_" + std::to_string(rng() % 1000000000000ULL);
}

// A database of its own on the server, reached directly (setting up, checking) and through
// PgBouncer (what dbstep is given).
struct PooledDatabase {
  std::string direct_admin = dbstep::testing::postgres_server_url();
  std::string pooled_admin = pgbouncer_server_url();
  std::string db = random_db();
  std::string direct = url_with_database(direct_admin, db);

  PooledDatabase() { PgConnection(direct_admin).query("CREATE DATABASE " + db); }
  ~PooledDatabase() {
    try {
      PgConnection(direct_admin).query("DROP DATABASE IF EXISTS " + db + " WITH (FORCE)");
    } catch (...) {
    }
  }
  PooledDatabase(const PooledDatabase&) = delete;
  PooledDatabase& operator=(const PooledDatabase&) = delete;

  std::string pooled(std::string_view params = "") const {
    return url_with_database(pooled_admin, db, params);
  }
  std::string query(const std::string& sql) const {
    auto rows = PgConnection(direct).query(sql);
    return rows.empty() || rows[0].empty() ? "" : rows[0][0];
  }
  bool table_exists(std::string_view name) const {
    return query("SELECT to_regclass('" + std::string(name) + "') IS NOT NULL") == "t";
  }
  // Advisory locks anyone holds on this database.
  int advisory_locks() const {
    return std::stoi(query("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND "
                           "database = (SELECT oid FROM pg_database WHERE datname = '" + db + "')"));
  }
  // Makes PgBouncer open `n` server connections to this database at once (n clients in a
  // transaction each), so that its round robin hands consecutive transactions of one client to
  // different server sessions from then on.
  void warm_pool(int n) const {
    std::vector<std::unique_ptr<PgConnection>> clients;
    for (int i = 0; i < n; ++i) {
      clients.push_back(std::make_unique<PgConnection>(pooled()));
      clients.back()->query("BEGIN");
      clients.back()->query("SELECT 1");
    }
    std::set<std::string> pids;
    for (auto& c : clients) pids.insert(c->query("SELECT pg_backend_pid()")[0][0]);
    for (auto& c : clients) c->query("COMMIT");
    if (static_cast<int>(pids.size()) != n) throw std::runtime_error("PgBouncer did not open the server connections");
  }
  // Ends the server sessions PgBouncer keeps open to this database (it opens new ones when asked).
  // Ends the server sessions PgBouncer holds to this database, and waits (up to 5 s each) until
  // they are gone, their locks with them: pg_terminate_backend() alone only sends the signal.
  void close_pooled_sessions() const {
    query("SELECT count(pg_terminate_backend(pid, 5000)) FROM pg_stat_activity WHERE datname = "
          "current_database() AND pid <> pg_backend_pid()");
  }
};

// The conformance suite's fixture: every driver connects through PgBouncer with
// x-lock-strategy=table; the checks go straight to the server.
struct PgBouncerFixture {
  static constexpr const char* kName = "postgres through pgbouncer";
  PooledDatabase database;

  std::unique_ptr<Driver> open(std::string_view params = "") {
    std::string p = "x-lock-strategy=table";
    if (!params.empty()) p += "&" + std::string(params);
    return drivers::open_postgres(Url::parse(database.pooled(p)));
  }
  std::int64_t query_int(std::string_view sql) { return std::stoll(database.query(std::string(sql))); }
  bool table_exists(std::string_view name) { return database.table_exists(name); }
  void exec(std::string_view sql) { PgConnection(database.direct).query(std::string(sql)); }
};

// A loopback relay in front of a server that reads what the client sends, message by message
// (PostgreSQL's frontend protocol), and keeps the names of the prepared statements it creates
// (Parse messages) and uses (Bind messages); it also counts round trips (the client sending
// after the server answered). One client connection at a time, as a driver makes.
class StatementSniffer {
 public:
  explicit StatementSniffer(int server_port) : server_port_(server_port) {
    listener_ = dbstep::testing::listen_on_loopback(4, port_);
    thread_ = std::thread([this] {
      while (!stop_) relay_one();
    });
  }
  ~StatementSniffer() {
    stop_ = true;
    thread_.join();
    ::close(listener_);
  }
  StatementSniffer(const StatementSniffer&) = delete;
  StatementSniffer& operator=(const StatementSniffer&) = delete;

  int port() const { return port_; }
  int parses() const { return parses_; }
  int round_trips() const { return round_trips_; }
  std::set<std::string> named_statements() const {
    std::lock_guard<std::mutex> g(mutex_);
    return named_;
  }

 private:
  void relay_one() {
    pollfd l{listener_, POLLIN, 0};
    if (::poll(&l, 1, 50) <= 0) return;
    const int client = ::accept(listener_, nullptr, nullptr);
    if (client < 0) return;
    const int server = dbstep::testing::connect_to_loopback(server_port_);
    if (server >= 0) {
      std::string pending;   // client bytes not yet read as whole messages
      bool started = false;  // the startup packet (no type byte) was read
      bool answered = true;  // the client's next bytes start a round trip
      char buf[1 << 16];
      while (!stop_) {
        pollfd p[2] = {{client, POLLIN, 0}, {server, POLLIN, 0}};
        if (::poll(p, 2, 50) <= 0) continue;
        if (p[0].revents) {
          const ssize_t n = ::read(client, buf, sizeof buf);
          if (n <= 0 || ::write(server, buf, static_cast<std::size_t>(n)) != n) break;
          if (answered) ++round_trips_;
          answered = false;
          pending.append(buf, static_cast<std::size_t>(n));
          read_messages(pending, started);
        }
        if (p[1].revents) {
          const ssize_t n = ::read(server, buf, sizeof buf);
          if (n <= 0 || ::write(client, buf, static_cast<std::size_t>(n)) != n) break;
          answered = true;
        }
      }
    }
    ::close(client);
    if (server >= 0) ::close(server);
  }

  static std::uint32_t be32(const std::string& s, std::size_t at) {
    return (std::uint32_t(std::uint8_t(s[at])) << 24) | (std::uint32_t(std::uint8_t(s[at + 1])) << 16) |
           (std::uint32_t(std::uint8_t(s[at + 2])) << 8) | std::uint32_t(std::uint8_t(s[at + 3]));
  }

  void read_messages(std::string& pending, bool& started) {
    for (;;) {
      if (!started) {
        if (pending.size() < 4 || pending.size() < be32(pending, 0)) return;
        pending.erase(0, be32(pending, 0));
        started = true;
        continue;
      }
      if (pending.size() < 5) return;
      const std::size_t size = 1 + be32(pending, 1);
      if (pending.size() < size) return;
      const std::string body = pending.substr(5, size - 5);
      if (pending[0] == 'P') {  // Parse: statement name, query, ...
        ++parses_;
        note(body.substr(0, body.find('\0')));
        note_sql_level(body.substr(body.find('\0') + 1));
      } else if (pending[0] == 'Q') {  // Query: the text
        note_sql_level(body);
      } else if (pending[0] == 'B') {  // Bind: portal name, statement name, ...
        const std::size_t statement = body.find('\0') + 1;
        note(body.substr(statement, body.find('\0', statement) - statement));
      }
      pending.erase(0, size);
    }
  }

  // The SQL-level kind, PREPARE name ... and EXECUTE name(...), lives in the session as well:
  // either word, in any case, at the start of a statement.
  void note_sql_level(const std::string& sql) {
    auto lower = [](char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); };
    bool at_start = true;  // only blanks since the text's start or a ';'
    for (std::size_t i = 0; i < sql.size(); ++i) {
      if (sql[i] == ';') {
        at_start = true;
        continue;
      }
      if (std::isspace(static_cast<unsigned char>(sql[i]))) continue;
      if (at_start) {
        for (std::string_view word : {"prepare ", "execute "}) {
          std::size_t k = 0;
          while (k < word.size() && i + k < sql.size() && lower(sql[i + k]) == word[k]) ++k;
          if (k < word.size()) continue;
          std::size_t from = i + k, end = from;
          while (end < sql.size() && (std::isalnum(static_cast<unsigned char>(sql[end])) || sql[end] == '_')) ++end;
          note(sql.substr(from, end - from));
        }
      }
      at_start = false;
    }
  }

  void note(const std::string& name) {
    if (name.empty()) return;
    std::lock_guard<std::mutex> g(mutex_);
    named_.insert(name);
  }

  int server_port_;
  int listener_ = -1;
  int port_ = 0;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<int> parses_{0};
  std::atomic<int> round_trips_{0};
  mutable std::mutex mutex_;
  std::set<std::string> named_;
};

bool contains(const std::string& haystack, std::string_view needle) {
  return haystack.find(needle) != std::string::npos;
}

const DbState kNone{};

}  // namespace

TEST_CASE_TEMPLATE_INVOKE(driver_conformance, PgBouncerFixture);

TEST_CASE("pgbouncer: the advisory lock behind a transaction pooler is refused, saying what to do") {
  PooledDatabase database;
  for (const std::string params : {"", "x-lock-strategy=advisory"}) {
    CAPTURE(params);
    auto d = drivers::open_postgres(Url::parse(database.pooled(params)));
    CHECK(d->state() == kNone);  // reading needs no lock: it works
    auto e = capture_error([&] { d->lock(5s); });
    CHECK(e.code() == ErrorCode::kInvalidArgument);
    const std::string what = e.what();
    CHECK(contains(what, "connection pooler"));
    CHECK(contains(what, "x-lock-strategy=table"));
    CHECK(contains(what, "x-pooler=session"));
    CHECK(contains(what, "Nothing was locked or changed"));
    CHECK(contains(what, database.db));
    // Not locked: a second attempt is refused the same way, not "already locked".
    CHECK(capture_error([&] { d->lock(5s); }).code() == ErrorCode::kInvalidArgument);
  }
  CHECK(database.advisory_locks() == 0);
  CHECK_FALSE(database.table_exists("schema_migrations"));
  CHECK_FALSE(database.table_exists("schema_migrations_history"));
}

TEST_CASE("pgbouncer: x-pooler says what the URL cannot show, and a direct connection is no pooler") {
  PooledDatabase database;
  // Direct: nothing detected, the advisory lock holds as always, with or without x-pooler=session.
  for (const std::string params : {"", "x-pooler=session"}) {
    CAPTURE(params);
    auto d = drivers::open_postgres(
        Url::parse(url_with_database(database.direct_admin, database.db, params)));
    d->lock(5s);
    CHECK(database.advisory_locks() >= 1);
    CHECK(d->apply(up_step(1, "CREATE TABLE direct (x int);"), kNone));
    d->unlock();
    d->set_state(kNone);
    database.query("DROP TABLE direct");
  }
  // x-pooler=transaction refuses the advisory lock even where nothing is detected.
  auto d = drivers::open_postgres(
      Url::parse(url_with_database(database.direct_admin, database.db, "x-pooler=transaction")));
  auto e = capture_error([&] { d->lock(5s); });
  CHECK(e.code() == ErrorCode::kInvalidArgument);
  CHECK(contains(e.what(), "x-lock-strategy=table"));
  // ... and not the table lock.
  auto t = drivers::open_postgres(Url::parse(url_with_database(
      database.direct_admin, database.db, "x-pooler=transaction&x-lock-strategy=table")));
  t->lock(5s);
  t->unlock();
  // A value it does not know is an error before anything connects.
  auto bad = capture_error(
      [&] { drivers::open_postgres(Url::parse(database.pooled("x-pooler=sometimes"))); });
  CHECK(bad.code() == ErrorCode::kInvalidArgument);
  CHECK(contains(bad.what(), "x-pooler"));
}

TEST_CASE("pgbouncer: a plain TCP relay is no pooler: the advisory lock is taken and holds") {
  // The server sees the relay's address and port, not ours (as behind HAProxy or a port
  // mapping), but the session is whole, and its process id comes through with it.
  PooledDatabase database;
  StatementSniffer relay(port_of(database.direct_admin));
  auto d = drivers::open_postgres(Url::parse(with_port(database.direct, relay.port())));
  d->lock(5s);
  CHECK(database.advisory_locks() >= 1);
  CHECK(d->apply(up_step(1, "CREATE TABLE relayed (x int);"), kNone));
  d->unlock();
  CHECK(database.advisory_locks() == 0);
  CHECK(database.table_exists("relayed"));
}

TEST_CASE("pgbouncer: x-pooler=session behind a transaction pooler is caught in the migration's transaction") {
  {
    // Several server sessions in the pool: the session's first write runs on another one than
    // the lock query did.
    PooledDatabase database;
    database.warm_pool(4);
    auto d = drivers::open_postgres(Url::parse(database.pooled("x-pooler=session")));
    d->lock(5s);  // taken on one server session, which goes back to the pool
    auto e = capture_error([&] { d->apply(up_step(1, "CREATE TABLE never (x int);"), kNone); });
    CHECK(e.code() == ErrorCode::kInvalidArgument);
    CHECK(contains(e.what(), "does not hold the advisory lock"));
    CHECK(contains(e.what(), "x-lock-strategy=table"));
    CHECK_FALSE(database.table_exists("never"));
    CHECK_FALSE(database.table_exists("schema_migrations"));
    CHECK(d->state() == kNone);
    d->unlock();
    database.close_pooled_sessions();  // the lock stayed behind on a pooled server session
    CHECK(database.advisory_locks() == 0);
  }
  {
    // One server session in the pool: everything runs on the session holding the lock, which
    // is what x-pooler=session vouches for, and works. Then that server session ends (a pooler
    // recycles its server connections): the next migration, on the short path where BEGIN and
    // the check travel with the statements, is refused.
    // The check rides in the migration's round trip: counted by a relay in front of PgBouncer.
    PooledDatabase database;
    StatementSniffer relay(port_of(database.pooled_admin));
    auto d = drivers::open_postgres(
        Url::parse(with_port(database.pooled("x-pooler=session"), relay.port())));
    d->lock(5s);
    CHECK(d->apply(up_step(1, "CREATE TABLE one (x int);"), kNone));
    for (Version v = 2; v <= 4; ++v) {
      const int before = relay.round_trips();
      CHECK(d->apply(up_step(v, fmt::format("CREATE TABLE t{} (x int);", v)), DbState{v - 1, false}));
      CHECK(relay.round_trips() - before == 1);
    }
    CHECK(database.advisory_locks() >= 1);
    database.close_pooled_sessions();
    std::this_thread::sleep_for(300ms);  // PgBouncer notices its server connection closed
    auto e = capture_error([&] { d->apply(up_step(5, "CREATE TABLE never (x int);"), DbState{4, false}); });
    CHECK(e.code() == ErrorCode::kInvalidArgument);
    CHECK(contains(e.what(), "does not hold the advisory lock"));
    CHECK_FALSE(database.table_exists("never"));
    CHECK(d->state() == DbState{4, false});
    d->unlock();
  }
}

TEST_CASE("pgbouncer: dbstep migrate through a transaction pooler: advisory refused, table works") {
  dbstep::testing::TempDir tmp;
  auto dir = tmp / "m";
  dbstep::testing::write_file(dir / "1_a.up.sql", "CREATE TABLE a (x int);\nINSERT INTO a VALUES (1);\n");
  dbstep::testing::write_file(dir / "2_b.up.sql", "CREATE TABLE b (x int);\n");
  PooledDatabase database;
  auto r = dbstep::testing::run_dbstep({"-d", database.pooled(), "-s", dir.string(), "migrate", "all"},
                                       tmp.path());
  CHECK(r.code == 1);
  CHECK(contains(r.err, "x-lock-strategy=table"));
  CHECK(contains(r.err, "connection pooler"));
  CHECK_FALSE(contains(r.out, "Applied migration"));
  CHECK_FALSE(database.table_exists("a"));
  CHECK_FALSE(database.table_exists("schema_migrations"));
  CHECK(database.advisory_locks() == 0);

  r = dbstep::testing::run_dbstep(
      {"-d", database.pooled("x-lock-strategy=table"), "-s", dir.string(), "migrate", "all"},
      tmp.path());
  CHECK_MESSAGE(r.code == 0, r.err);
  CHECK(contains(r.out, "Applied migration 2"));
  CHECK(database.query("SELECT version FROM schema_migrations") == "2");
  CHECK(database.query("SELECT count(*) FROM schema_lock") == "0");
}

TEST_CASE("pgbouncer: 16 processes migrating one new database through it apply each migration exactly once") {
  constexpr int kProcesses = 16, kMigrations = 12, kNoTransaction = 6, kTrials = 3;
  dbstep::testing::TempDir tmp;
  auto dir = tmp / "m";
  // Every migration fails if it runs twice; one runs outside a transaction (dirty protocol).
  dbstep::testing::write_once_only_migrations(dir, kMigrations, kNoTransaction);
  for (int trial = 0; trial < kTrials; ++trial) {
    CAPTURE(trial);
    PooledDatabase database;  // new: the processes race to create the lock and version tables too
    const std::string url = database.pooled("x-lock-strategy=table");
    dbstep::testing::race_migrate_all(kProcesses, url, dir, tmp.path(), kMigrations);
    CHECK(database.query("SELECT version::text || ' ' || dirty::text FROM schema_migrations") ==
          fmt::format("{} false", kMigrations));
    CHECK(database.query("SELECT count(*) FROM schema_migrations") == "1");
    CHECK(database.query("SELECT string_agg(n::text, ',' ORDER BY n) FROM applied") ==
          "1,2,3,4,5,6,7,8,9,10,11,12");
    for (int v = 2; v <= kMigrations; ++v) {
      CHECK(database.query(fmt::format("SELECT string_agg(x::text, ',') FROM c_{}", v)) ==
            std::to_string(v));
    }
    CHECK(database.query("SELECT count(*) FROM schema_lock") == "0");
  }
}

TEST_CASE("pgbouncer: x-statement-timeout bounds the migrations and stays off the pool's sessions") {
  // Behind a transaction pooler a session SET would stay on whichever server session ran it (the
  // pool's next client gets it) and miss the migrations' transactions, which run on others.
  PooledDatabase database;
  auto d = drivers::open_postgres(
      Url::parse(database.pooled("x-lock-strategy=table&x-statement-timeout=300")));
  d->lock(5s);
  // The session's first write (its own round trips) and the later ones (one message each).
  auto e = capture_error([&] { d->apply(up_step(1, "SELECT pg_sleep(3);"), kNone); });
  CHECK(e.sqlstate == "57014");
  CHECK(d->apply(up_step(1, "CREATE TABLE a (x int);"), kNone));
  e = capture_error([&] { d->apply(up_step(2, "SELECT pg_sleep(3);"), DbState{1, false}); });
  CHECK(e.sqlstate == "57014");
  CHECK(d->apply(up_step(2, "CREATE TABLE b (x int);"), DbState{1, false}));
  // Statements outside a transaction cannot be bounded there: refused before anything runs.
  e = capture_error([&] {
    d->apply(up_step(3, "CREATE INDEX CONCURRENTLY a_x ON a (x);"), DbState{2, false});
  });
  CHECK(e.code() == ErrorCode::kInvalidArgument);
  CHECK(std::string(e.what()).find("x-statement-timeout") != std::string::npos);
  CHECK(database.query("SELECT count(*) FROM pg_indexes WHERE indexname = 'a_x'") == "0");
  CHECK(d->state() == DbState{2, false});
  // drop's transaction too: a lock another session holds makes it wait, and the timeout ends it.
  {
    PgConnection holder(database.direct);
    holder.query("SET idle_in_transaction_session_timeout = 5000");  // no hang should drop wait
    holder.query("BEGIN");
    holder.query("LOCK TABLE a IN ACCESS SHARE MODE");
    const auto started = std::chrono::steady_clock::now();
    e = capture_error([&] { d->drop(); });
    CHECK(e.sqlstate == "57014");
    CHECK(std::chrono::steady_clock::now() - started < 3s);
    holder.query("ROLLBACK");
  }
  CHECK(database.table_exists("a"));
  d->unlock();
  d.reset();
  // No server session of the pool kept the setting: as many clients as the database has server
  // sessions, each in a transaction of its own (so each holds a different one).
  const int sessions = std::stoi(database.query(
      "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> "
      "pg_backend_pid()"));
  REQUIRE(sessions >= 1);
  std::vector<std::unique_ptr<PgConnection>> clients;
  for (int i = 0; i < sessions + 1; ++i) {
    clients.push_back(std::make_unique<PgConnection>(database.pooled()));
    clients.back()->query("BEGIN");
    CHECK(clients.back()->query("SHOW statement_timeout")[0][0] == "0");
  }
  for (auto& c : clients) c->query("COMMIT");
}

TEST_CASE("pgbouncer: the driver never sends a named prepared statement") {
  // Named prepared statements live in one server session; under transaction pooling the next
  // transaction may run on another, where they do not exist. Everything the driver does, through
  // a relay that reads each message, in front of PgBouncer.
  PooledDatabase database;
  StatementSniffer sniffer(port_of(database.pooled_admin));
  auto d = drivers::open_postgres(
      Url::parse(with_port(database.pooled("x-lock-strategy=table"), sniffer.port())));
  d->lock(5s);
  CHECK(d->apply(up_step(1, "CREATE TABLE a (x int);\nINSERT INTO a VALUES (1);"), kNone));
  CHECK(d->apply(up_step(2, "CREATE TABLE b (x int);\nINSERT INTO b VALUES (2);"), DbState{1, false}));
  CHECK(d->apply(up_step(3, "-- dbstep:no-transaction\nCREATE TABLE c (x int);"), DbState{2, false}));
  CHECK(d->state() == DbState{3, false});
  d->history();
  d->set_state({3, false});
  d->drop();
  d->unlock();
  d.reset();
  CHECK(sniffer.parses() > 0);  // the extended protocol was used (pipelines), and seen
  CHECK(sniffer.named_statements() == std::set<std::string>{});
  // The sniffer sees a named statement when there is one.
  PGconn* probe = PQconnectdb(with_port(database.pooled(), sniffer.port()).c_str());
  REQUIRE(PQstatus(probe) == CONNECTION_OK);
  PQclear(PQprepare(probe, "probe_statement", "SELECT 1", 0, nullptr));
  PQclear(PQexecPrepared(probe, "probe_statement", 0, nullptr, nullptr, nullptr, 0));
  PQfinish(probe);
  CHECK(sniffer.named_statements() == std::set<std::string>{"probe_statement"});
  // ... and the SQL-level kind.
  probe = PQconnectdb(with_port(database.pooled(), sniffer.port()).c_str());
  REQUIRE(PQstatus(probe) == CONNECTION_OK);
  PQclear(PQexec(probe, "BEGIN; PREPARE sql_probe AS SELECT 1; execute sql_probe; COMMIT"));
  PQfinish(probe);
  CHECK(sniffer.named_statements() == std::set<std::string>{"probe_statement", "sql_probe"});
}
