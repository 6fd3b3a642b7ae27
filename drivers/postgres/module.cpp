// The entry point of dbstep-postgres.so (module.hpp): the only symbol the module exports.

#include "core/history.hpp"
#include "drivers/postgres/module.hpp"
#include "drivers/postgres/postgres_driver.hpp"

extern "C" __attribute__((visibility("default"))) const dbstep::drivers::PostgresModule*
dbstep_postgres_module_v1() {
  static const dbstep::drivers::PostgresModule api{
      dbstep::drivers::kPostgresModuleAbi, dbstep::dbstep_release(),
      &dbstep::drivers::open_postgres, &dbstep::drivers::start_postgres};
  return &api;
}
