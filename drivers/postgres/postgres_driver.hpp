#pragma once
// The PostgreSQL driver. URLs: postgres://... and postgresql://..., in any form libpq accepts:
//   postgres://user:password@host:port/dbname?sslmode=disable   a URL
//   postgres://?host=/run/postgresql&dbname=app                  libpq keywords as parameters
//   postgres://                                                  libpq's defaults: PGHOST, PGUSER,
//                                                                PGDATABASE, ~/.pgpass ...
//   postgres:host=db.internal dbname=app user=me                 a libpq key=value string
// Parameters:
//   x-migrations-table=NAME        the version table (default schema_migrations), in the current
//                                  schema (the first schema on the search_path)
//   x-migrations-table-quoted=BOOL NAME is "schema"."table" (golang-migrate's rules)
//   x-history-table=NAME           the history table (default: the version table's name +
//                                  "_history", in its schema), quoted by the same rules
//   x-statement-timeout=MS         statement_timeout for the migrations' statements (SET LOCAL in
//                                  each transaction behind a transaction pooler)
//   x-lock-timeout=MS              overrides the lock timeout the caller passes to lock()
//   x-lock-strategy=advisory|table session advisory lock (default), or a row in a lock table
//                                  for poolers that do not keep sessions (PgBouncer transaction
//                                  mode)
//   x-lock-table=NAME              the lock table of x-lock-strategy=table (default schema_lock)
//   x-pooler=session|transaction   a connection pooler in between keeps sessions (the advisory
//                                  lock holds) or not (refused); without it a pooler is detected
//                                  and the advisory lock refused (pooler_check.hpp)
//   x-multi-statement(-max-size)   accepted for golang-migrate compatibility and ignored: files are
//                                  always split into statements by PostgreSQL's own parser
//   libpq keywords                 passed to libpq unchanged (sslmode, connect_timeout ...)
//   any other key                  a server setting sent at connection (search_path=app ...)
//   other x- keys                  ignored, never sent to the server
// The class lives in the internal postgres_driver_impl.hpp; libpq and libpg_query never appear in
// this header.

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string_view>

#include "core/driver.hpp"
#include "core/registry.hpp"
#include "core/url.hpp"

namespace dbstep::drivers {

// Connects to the database the URL names. Throws Error(kInvalidArgument) for a bad x- parameter
// (before connecting) and Error(kDatabase) when the server cannot be reached; no message holds
// the URL's password.
std::unique_ptr<Driver> open_postgres(const Url& url);
// open_postgres() in two halves (Registry::start_driver()): checks the x- parameters and sends
// what libpq sends before the server's first answer, so the server starts the session while the
// caller works; the PendingDriver waits for it and reads the session's schema. Errors as
// open_postgres(), each from the half that meets it.
PendingDriver start_postgres(const Url& url);

// golang-migrate's GenerateAdvisoryLockId: the CRC-32 (IEEE) of `additional` and then
// `database_name` joined by NUL bytes, times 1486364155, modulo 2^32. The driver locks
// advisory_lock_key(current_database(), {schema, table}).
std::uint32_t advisory_lock_key(std::string_view database_name,
                                std::initializer_list<std::string_view> additional = {});

}  // namespace dbstep::drivers
