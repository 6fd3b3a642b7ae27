#pragma once
// `drop` on PostgreSQL: everything in the current schema that does not belong to an extension,
// in one transaction: tables (partitioned and foreign too), views, materialized views, free
// sequences, functions, procedures, aggregates, types and domains, then the version and history
// tables (also when x-migrations-table-quoted put them in another schema). Other schemas and
// extensions are not touched (creating an extension often needs a superuser). The lock table of
// x-lock-strategy=table stays: the run holds its row.

#include <string>

#include "drivers/postgres/connection.hpp"

namespace dbstep::drivers::pg {

struct DropTargets {
  std::string schema;          // current_schema(), for messages
  std::string version_table;   // quoted, schema-qualified
  std::string history_table;   // quoted, schema-qualified
  std::string keep_lock_table; // unquoted name in the current schema, or empty
  std::string begin = "BEGIN";  // what opens the transaction (and sets it up)
};

// Throws Error(kDatabase) naming the object that could not be dropped; nothing is then dropped.
void drop_everything(Connection& conn, const DropTargets& targets);

}  // namespace dbstep::drivers::pg
