// Migrates the SQLite database named on the command line with the migrations compiled into this
// program, through dbstep's installed library.
#include <iostream>
#include <string>

#include "dbstep/dbstep.hpp"
#include "dbstep_embedded/consumer_migrations.hpp"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: consumer DB_PATH\n";
    return 2;
  }
  auto m = dbstep::open(std::string("sqlite://") + argv[1],
                        dbstep::sources::open_embedded(dbstep_embedded::consumer_migrations()));
  dbstep::Result r = m.up();
  if (!r.ok()) {
    std::cerr << "consumer: " << r.error->what() << "\n";
    return 1;
  }
  std::cout << "consumer: applied " << r.steps.size() << " migration(s), now at version "
            << dbstep::to_string(r.to) << "\n";
  return 0;
}
