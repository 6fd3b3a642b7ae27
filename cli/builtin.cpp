#include "cli/builtin.hpp"

#include "dbstep_embedded/default_migrations.hpp"
#include "drivers/postgres/postgres_driver.hpp"
#include "drivers/sqlite/sqlite_driver.hpp"
#include "sources/dir/dir_source.hpp"
#include "sources/embedded/embedded_source.hpp"

namespace dbstep::cli {

void register_builtin(Registry& registry) {
  registry.add_driver("sqlite", &drivers::open_sqlite);
  registry.add_driver("sqlite3", &drivers::open_sqlite);
  registry.add_driver("postgres", &drivers::open_postgres);
  registry.add_driver("postgresql", &drivers::open_postgres);
  registry.add_source("file", &sources::open_directory);
  registry.add_source("embedded",
                      sources::embedded_factory({&dbstep_embedded::default_migrations()}));
}

}  // namespace dbstep::cli
