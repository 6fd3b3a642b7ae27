#pragma once
// dbstep's library in one include: the Migrator (core/migrator.hpp) plus every driver and source
// built into dbstep, so a program can migrate its database in a few lines:
//
//   #include "dbstep/dbstep.hpp"
//   #include "dbstep_embedded/app_migrations.hpp"     // from dbstep_embed_migrations()
//
//   auto m = dbstep::open("sqlite://app.db",
//                         dbstep::sources::open_embedded(dbstep_embedded::app_migrations()));
//   dbstep::Result r = m.up();
//   if (!r.ok()) throw *r.error;     // r.steps still lists what was applied
//
// Link dbstep::dbstep (find_package(dbstep) gives it, and dbstep_embed_migrations()).
// Thread-safety: builtin_registry() is safe to call from any thread; each Migrator is used from
// one thread at a time (see core/migrator.hpp).

#include <memory>
#include <string_view>
#include <vector>

#include "core/migrator.hpp"
#include "core/registry.hpp"
#include "core/url.hpp"  // url_for_path(): a file path as a database or source URL
#include "sources/embedded/embedded_source.hpp"

namespace dbstep {

// Registers sqlite://, sqlite3://, postgres://, postgresql://, file:// (and plain folder paths)
// and, when `embedded` is not empty, embedded:// over those sets (embedded:// is the first set,
// embedded://NAME any of them). The sets are borrowed and must outlive the registry.
void register_builtin(Registry& registry,
                      std::vector<const sources::EmbeddedFiles*> embedded = {});

// A registry holding every built-in driver and source (no embedded sets), made on first use.
const Registry& builtin_registry();

// A Migrator over a built-in database driver and a source named by URL or folder path.
Migrator open(std::string_view database_url, std::string_view source_url,
              MigratorOptions options = {});

// A Migrator over a built-in database driver and a Source you made, such as
// sources::open_embedded(...) over migrations compiled into your program.
Migrator open(std::string_view database_url, std::unique_ptr<Source> source,
              MigratorOptions options = {});

}  // namespace dbstep
