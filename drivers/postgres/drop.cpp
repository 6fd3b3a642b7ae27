#include "drivers/postgres/drop.hpp"

#include <fmt/format.h>

#include <pqxx/result>

namespace dbstep::drivers::pg {

void drop_everything(Connection& conn, const DropTargets& targets) {
  // In an order that lets CASCADE and IF EXISTS absorb dependencies: relations, free sequences,
  // routines, types.
  static const std::string list_sql = R"SQL(
WITH ns AS (SELECT oid FROM pg_namespace WHERE nspname = current_schema()),
ext AS (SELECT classid, objid FROM pg_depend WHERE deptype = 'e')
SELECT kind, name FROM (
  SELECT 1 AS ord,
         CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                        WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END AS kind,
         format('%I.%I', current_schema(), c.relname) AS name
    FROM pg_class c
   WHERE c.relnamespace = (SELECT oid FROM ns) AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
     AND NOT EXISTS (SELECT 1 FROM ext WHERE ext.classid = 'pg_class'::regclass AND ext.objid = c.oid)
     AND NOT (c.relkind IN ('r', 'p') AND c.relname = $1)
  UNION ALL
  SELECT 2, 'SEQUENCE', format('%I.%I', current_schema(), c.relname)
    FROM pg_class c
   WHERE c.relnamespace = (SELECT oid FROM ns) AND c.relkind = 'S'
     AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                     AND d.objid = c.oid AND d.deptype IN ('e', 'a', 'i'))
  UNION ALL
  SELECT 3, CASE p.prokind WHEN 'a' THEN 'AGGREGATE' WHEN 'p' THEN 'PROCEDURE' ELSE 'FUNCTION' END,
         format('%I.%I(%s)', current_schema(), p.proname, pg_get_function_identity_arguments(p.oid))
    FROM pg_proc p
   WHERE p.pronamespace = (SELECT oid FROM ns)
     AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass
                     AND d.objid = p.oid AND d.deptype IN ('e', 'i'))
  UNION ALL
  SELECT 4, CASE t.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END,
         format('%I.%I', current_schema(), t.typname)
    FROM pg_type t
   WHERE t.typnamespace = (SELECT oid FROM ns)
     AND (t.typtype IN ('d', 'e', 'r')
          OR (t.typtype = 'c' AND (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c')
          OR (t.typtype = 'b' AND t.typcategory <> 'A'))
     AND NOT EXISTS (SELECT 1 FROM ext WHERE ext.classid = 'pg_type'::regclass AND ext.objid = t.oid)
) o ORDER BY ord, name)SQL";
  conn.exec(targets.begin, "starting a transaction");
  const pqxx::result r =
      conn.exec_params(list_sql, {targets.keep_lock_table},
                       fmt::format("listing the objects in schema {}", targets.schema));
  for (const auto& row : r) {
    const std::string kind = row[0].as<std::string>();
    const std::string name = row[1].as<std::string>();
    conn.exec(fmt::format("DROP {} IF EXISTS {} CASCADE", kind, name),
              fmt::format("dropping {} {}", kind, name));
  }
  conn.exec(fmt::format("DROP TABLE IF EXISTS {} CASCADE", targets.version_table),
            fmt::format("dropping the version table {}", targets.version_table));
  // Gone already when it is in the current schema; not when x-migrations-table-quoted put it in
  // another one.
  conn.exec(fmt::format("DROP TABLE IF EXISTS {} CASCADE", targets.history_table),
            fmt::format("dropping the history table {}", targets.history_table));
  conn.exec("COMMIT", "dropping everything");
}

}  // namespace dbstep::drivers::pg
