#pragma once
// The PostgreSQL server (and the PgBouncer in front of it) the tests run against, and a
// connection of the test's own to it, for setting up and checking behind dbstep's back.
//
// scripts/test.sh starts both and exports their URLs as DBSTEP_TEST_POSTGRES_URL and
// DBSTEP_TEST_PGBOUNCER_URL. A test that needs one and finds it unset throws: it fails, never
// skips. Everything here is plain libpq, not dbstep's driver, so that a bug in the driver cannot
// hide itself from the checks. Nothing here is shared between threads.

#include <libpq-fe.h>

#include <cstdlib>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace dbstep::testing {

// $DBSTEP_TEST_POSTGRES_URL: the server, at its default database. Throws when it is unset.
inline std::string postgres_server_url() {
  const char* url = std::getenv("DBSTEP_TEST_POSTGRES_URL");
  if (!url || !*url) {
    throw std::runtime_error(
        "DBSTEP_TEST_POSTGRES_URL is not set: run the tests through scripts/test.sh, which starts "
        "a PostgreSQL server, or start one with `scripts/pg-cluster.sh start DIR` and export the "
        "URL it prints");
  }
  return url;
}

// $DBSTEP_TEST_PGBOUNCER_URL: a PgBouncer in transaction pooling mode in front of that server.
// Throws when it is unset.
inline std::string pgbouncer_server_url() {
  const char* url = std::getenv("DBSTEP_TEST_PGBOUNCER_URL");
  if (!url || !*url) {
    throw std::runtime_error(
        "DBSTEP_TEST_PGBOUNCER_URL is not set: run the tests through scripts/test.sh, or start "
        "one with `scripts/pg-cluster.sh start-pgbouncer DIR` and export the URL it prints");
  }
  return url;
}

// `url` with the query parameters `params` ("x-lock-strategy=table", several joined by '&')
// added after those it has; `url` itself when `params` is empty. libpq: a later keyword wins.
inline std::string url_with_params(const std::string& url, std::string_view params) {
  if (params.empty()) return url;
  return url + (url.find('?') == std::string::npos ? "?" : "&") + std::string(params);
}

// `url` (postgres://user@host:port/db?query) with its database (the path) replaced by `db`, or
// given one when it has none, its query kept, and `params` added as url_with_params() does.
inline std::string url_with_database(const std::string& url, std::string_view db,
                                     std::string_view params = "") {
  const auto query = url.find('?');
  std::string head = url.substr(0, query);
  const std::string tail = query == std::string::npos ? "" : url.substr(query);
  const auto slash = head.find('/', head.find("://") + 3);
  if (slash != std::string::npos) head.erase(slash);
  return url_with_params(head + "/" + std::string(db) + tail, params);
}

// One libpq connection of the test's own, open from construction to destruction; the server's
// notices are not printed. Every failure throws std::runtime_error saying what failed.
class PgConnection {
 public:
  explicit PgConnection(const std::string& url) : c_(PQconnectdb(url.c_str())) {
    if (PQstatus(c_) != CONNECTION_OK) {
      std::string why = PQerrorMessage(c_);
      PQfinish(c_);
      throw std::runtime_error("cannot connect to the PostgreSQL test server: " + why);
    }
    PQsetNoticeProcessor(c_, [](void*, const char*) {}, nullptr);
  }
  ~PgConnection() { PQfinish(c_); }
  PgConnection(const PgConnection&) = delete;
  PgConnection& operator=(const PgConnection&) = delete;

  // Runs `sql` (one or more statements); returns every row of the last, each as its columns
  // (NULL as "NULL").
  std::vector<std::vector<std::string>> query(const std::string& sql) {
    PGresult* r = run(sql);
    std::vector<std::vector<std::string>> rows;
    for (int i = 0; i < PQntuples(r); ++i) {
      auto& row = rows.emplace_back();
      for (int j = 0; j < PQnfields(r); ++j) {
        row.push_back(PQgetisnull(r, i, j) ? "NULL" : PQgetvalue(r, i, j));
      }
    }
    PQclear(r);
    return rows;
  }

  // Runs `sql`; returns the first column of the first row of the last statement ("" when there is
  // no row, or it is NULL).
  std::string scalar(const std::string& sql) {
    PGresult* r = run(sql);
    std::string out = PQntuples(r) > 0 && PQnfields(r) > 0 ? PQgetvalue(r, 0, 0) : "";
    PQclear(r);
    return out;
  }

 private:
  // The result of `sql`, which the caller clears; throws (naming `sql`) when it failed.
  PGresult* run(const std::string& sql) {
    PGresult* r = PQexec(c_, sql.c_str());
    const auto st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
      std::string why = r ? PQresultErrorMessage(r) : PQerrorMessage(c_);
      PQclear(r);
      throw std::runtime_error("test SQL failed: " + sql + ": " + why);
    }
    return r;
  }

  PGconn* c_;
};

// Runs `sql` on `url` through a connection of its own (CREATE DATABASE, setting up a schema).
inline void pg_exec(const std::string& url, const std::string& sql) {
  PgConnection(url).query(sql);
}

// The first column of the first row of `sql` on `url`, through a connection of its own ("" when
// there is no row, or it is NULL).
inline std::string pg_scalar(const std::string& url, const std::string& sql) {
  return PgConnection(url).scalar(sql);
}

}  // namespace dbstep::testing
