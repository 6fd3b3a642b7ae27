#pragma once
// Source: where migration files come from (a directory, files embedded in the binary, ...).
//
// A Source only lists file names and reads file bodies; it does not parse names, order versions
// or pair up and down files: core's MigrationIndex does that once for every source. A Source is
// made by a factory in the Registry, owned by the Migrator (std::unique_ptr), and used from one
// thread at a time. Implementations throw dbstep::Error and nothing else.

#include <string>
#include <string_view>
#include <vector>

namespace dbstep {

class Source {
 public:
  virtual ~Source() = default;

  // Base names of the regular files at the top level of the source, in any order. Sub-folders
  // are not listed. Called once when a Migrator opens. Throws Error(kSourceUnavailable) naming
  // the source when it cannot be listed.
  virtual std::vector<std::string> list() = 0;

  // The exact bytes of the file `name` (one of the names list() returned). Called once per
  // migration that runs, just before it runs. Throws Error(kSourceUnavailable) naming the file.
  virtual std::string read(std::string_view name) = 0;

  // How the source is named in messages: "directory ./migrations", "embedded migrations".
  virtual std::string describe() const = 0;
};

}  // namespace dbstep
