#pragma once
// A postgres:// URL as what libpq gets: one connection string (libpqxx takes nothing else).
//
// The URL (or libpq key=value string) after "postgres:" goes to libpq as it is, with the URL's
// parameters mapped as lib/pq and golang-migrate users expect: libpq's own keywords (sslmode,
// connect_timeout ...) as keywords, anything else that is not an x- key as a server setting in
// `options` (search_path=app), x- keys never sent. dbstep adds fallback_application_name=dbstep
// and client_encoding=UTF8 unless the URL sets them. Pure text, no connection.

#include <string>
#include <vector>

#include "core/url.hpp"

namespace dbstep::drivers::pg {

// What the URL asks libpq for, as the one connection string libpqxx takes.
struct ConnectSpec {
  std::string conninfo;
  std::vector<std::string> secrets;  // passwords to hide in every message
  std::string url_path;              // golang-migrate's purl.Path ("/db"), URL form only
};

ConnectSpec connect_spec(const Url& url);

// Whether libpq would bound the connection's wait (connect_timeout in `conninfo` or
// PGCONNECT_TIMEOUT), or may read settings from a service file that could: then only libpq's own
// blocking connect keeps its meaning (it moves on to the next host when one times out), and a
// connection is not started early (Connection(url, false)).
bool bounded_by_libpq(const std::string& conninfo);

}  // namespace dbstep::drivers::pg
