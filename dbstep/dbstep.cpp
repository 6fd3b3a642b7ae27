#include "dbstep/dbstep.hpp"

#ifdef DBSTEP_POSTGRES_AS_MODULE
#include "drivers/postgres/module.hpp"
#else
#include "drivers/postgres/postgres_driver.hpp"
#endif
#include "drivers/sqlite/sqlite_driver.hpp"
#include "sources/dir/dir_source.hpp"

namespace dbstep {

void register_builtin(Registry& registry, std::vector<const sources::EmbeddedFiles*> embedded) {
#ifdef DBSTEP_POSTGRES_AS_MODULE
  // The `dbstep` binary: the driver is loaded on the first PostgreSQL URL.
  constexpr auto open_postgres = &drivers::open_postgres_module;
  constexpr auto start_postgres = &drivers::start_postgres_module;
#else
  constexpr auto open_postgres = &drivers::open_postgres;
  constexpr auto start_postgres = &drivers::start_postgres;
#endif
  registry.add_driver("sqlite", &drivers::open_sqlite);
  registry.add_driver("sqlite3", &drivers::open_sqlite);
  registry.add_driver("postgres", open_postgres, start_postgres);
  registry.add_driver("postgresql", open_postgres, start_postgres);
  registry.add_source("file", &sources::open_directory);
  if (!embedded.empty()) {
    registry.add_source("embedded", sources::embedded_factory(std::move(embedded)));
  }
}

const Registry& builtin_registry() {
  static const Registry registry = [] {
    Registry r;
    register_builtin(r);
    return r;
  }();
  return registry;
}

Migrator open(std::string_view database_url, std::string_view source_url,
              MigratorOptions options) {
  return Migrator::open(builtin_registry(), database_url, source_url, options);
}

Migrator open(std::string_view database_url, std::unique_ptr<Source> source,
              MigratorOptions options) {
  return Migrator(std::move(source), builtin_registry().open_driver(database_url), options);
}

}  // namespace dbstep
