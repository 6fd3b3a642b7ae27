#pragma once
// The embedded source: migration files compiled into the binary by the CMake function
// dbstep_embed_migrations() (cmake/DbstepEmbed.cmake), byte for byte. The function generates an
// accessor, e.g. dbstep_embedded::app_migrations(), returning an EmbeddedFiles that lives for the
// whole program; open_embedded() makes a Source over it, and embedded_factory() registers one or
// more sets under the embedded:// scheme (embedded:// is the first set, embedded://NAME any set).

#include <cstddef>
#include <memory>
#include <string_view>
#include <vector>

#include "core/registry.hpp"
#include "core/source.hpp"

namespace dbstep::sources {

// Plain pointers so the generated tables are constant-initialised (no start-up cost).
struct EmbeddedFile {
  const char* name;
  const char* begin;
  const char* end;
};

struct EmbeddedFiles {
  const char* name;  // the NAME given to dbstep_embed_migrations()
  const EmbeddedFile* files;
  std::size_t count;
};

std::unique_ptr<Source> open_embedded(const EmbeddedFiles& files);

// A factory for Registry::add_source("embedded", ...): embedded:// opens sets[0], embedded://NAME
// the set of that name; an unknown name is an error listing the names.
SourceFactory embedded_factory(std::vector<const EmbeddedFiles*> sets);

}  // namespace dbstep::sources
