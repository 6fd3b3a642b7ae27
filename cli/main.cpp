#include <iostream>
#include <string>
#include <vector>

#include "cli/cli.hpp"

int main(int argc, char** argv) {
  return dbstep::cli::run(std::vector<std::string>(argv + 1, argv + argc), std::cout, std::cerr);
}
