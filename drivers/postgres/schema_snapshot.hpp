#pragma once
// The PostgreSQL driver's schema snapshot (Driver::schema_snapshot, core/schema_snapshot.hpp)
// and the scratch databases `verify` runs on.
//
// The snapshot reads pg_catalog for the current schema: extensions; types (enums with their
// labels in order, composites, domains, ranges); sequences; tables, partitioned and foreign
// tables with their columns in order (type, NOT NULL, default, identity, generated, collation),
// constraints, indexes (pg_get_indexdef), triggers (pg_get_triggerdef), row-level security and
// policies; views and materialized views (pg_get_viewdef); functions, procedures and aggregates
// (pg_get_functiondef: bodies included); comments on all of these. Objects that belong to an
// extension and the tables named in `own` (dbstep's version, history and lock tables) are left
// out. Everything is sorted by name in C++ (bytewise), and no OID, attribute number or other
// trace of the creation order is printed, so two databases built in different orders print the
// same text. A fixed number of queries, whatever the number of objects. Read-only.

#include <string>
#include <vector>

#include "core/url.hpp"

namespace dbstep::drivers::pg {

class Connection;

std::string schema_snapshot(Connection& conn, const std::vector<std::string>& own);

// CREATE DATABASE `name` on the server of `conn` and the URL that reaches it: `url` with
// dbname=`name` appended (a later dbname wins in libpq, whatever form `url` has). Without the
// CREATEDB right: Error(kDatabase) saying so and how to pass --scratch.
std::string create_scratch_database(Connection& conn, const Url& url, const std::string& name);
// DROP DATABASE `name` (WITH (FORCE): sessions left on it are ended). Nothing when it is gone.
void drop_scratch_database(Connection& conn, const std::string& name);

}  // namespace dbstep::drivers::pg
