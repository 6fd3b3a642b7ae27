// dbstep_template_probe: asks dbstep::testing for a database from the template of a migration
// folder, as one test process of a suite would, and prints the build id the template's first
// migration recorded (`SELECT id FROM build_id`), so that tests/testing/template_test.cpp can run
// two at once and check that they shared one build.
//
//   dbstep_template_probe sqlite MIGRATIONS_DIR TEMPLATE_FOLDER
//   dbstep_template_probe postgres MIGRATIONS_DIR SERVER_URL
#include <iostream>
#include <pqxx/pqxx>
#include <string>

#include "testing/postgres_test_database.hpp"
#include "testing/sqlite_test_database.hpp"

int main(int argc, char** argv) {
  if (argc != 4) {
    std::cerr << "usage: dbstep_template_probe sqlite|postgres MIGRATIONS_DIR "
                 "TEMPLATE_FOLDER|SERVER_URL\n";
    return 2;
  }
  const std::string kind = argv[1];
  try {
    auto set = dbstep::testing::MigrationSet::folder(argv[2]);
    dbstep::testing::Options options;
    options.lock_timeout = std::chrono::seconds(60);
    if (kind == "sqlite") {
      options.template_folder = argv[3];
      auto t = dbstep::testing::SqliteTestDatabase::from_template(set, options);
      std::cout << t.db().execAndGet("SELECT id FROM build_id").getString() << "\n";
    } else {
      options.postgres_pool = 0;
      auto t = dbstep::testing::PostgresTestDatabase::from_template(set, argv[3], options);
      pqxx::work tx(t.db());
      std::cout << tx.exec1("SELECT id FROM build_id")[0].as<std::string>() << "\n";
    }
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}
