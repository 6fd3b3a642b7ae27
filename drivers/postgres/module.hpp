#pragma once
// The PostgreSQL driver as a module: a shared object (dbstep-postgres.so) the `dbstep` binary
// loads on the first postgres:// URL it opens, so a run on SQLite never loads libpqxx, libpq and
// the thirty libraries libpq needs (Kerberos, LDAP, SASL, GnuTLS ...): relocating them was a
// quarter of an up-to-date `dbstep migrate all` (bench/README.md). A program that links
// dbstep::postgres (or dbstep::dbstep) gets the driver linked in instead and never loads this.
//
// Where the module is looked for, relative to the running executable (/proc/self/exe), so an
// installed tree can move: $DBSTEP_POSTGRES_MODULE (a path) when set; next to the executable
// (the build tree); ../lib/dbstep/ and ../<libdir>/dbstep/ (what `cmake --install` writes).
//
// The module is built from the same sources as the binary: open_postgres_module() refuses one
// from another dbstep release or module ABI, naming both. The module carries its own copy of
// core (hidden): only its entry point is exported, and objects cross the boundary as the C++
// types both sides were compiled with (Url in, std::unique_ptr<Driver> and dbstep::Error out).

#include <memory>
#include <string>
#include <string_view>

#include "core/driver.hpp"
#include "core/registry.hpp"
#include "core/url.hpp"

namespace dbstep::drivers {

// What the module hands the binary: its entry point returns a pointer to one of these.
struct PostgresModule {
  int abi;              // kPostgresModuleAbi of the module's build
  const char* release;  // dbstep_release() of the module's build
  std::unique_ptr<Driver> (*open)(const Url& url);
  PendingDriver (*start)(const Url& url);
};
inline constexpr int kPostgresModuleAbi = 2;
inline constexpr const char* kPostgresModuleFile = "dbstep-postgres.so";
inline constexpr const char* kPostgresModuleEntry = "dbstep_postgres_module_v1";

// open_postgres() through the module, loaded on the first call (never unloaded; thread-safe).
// Throws Error(kDatabase) when the module cannot be found or loaded, saying where it looked and
// what to install (Debian: libpqxx-6.4, libpq5); the next call tries again.
std::unique_ptr<Driver> open_postgres_module(const Url& url);
// start_postgres() through the module, loaded as open_postgres_module() loads it.
PendingDriver start_postgres_module(const Url& url);

// The advice for a dlopen() failure `why` of the module at `path`: names the Debian package of
// the library it lacks (libpqxx-6.4, libpq5). Pure, for tests.
std::string module_load_error(std::string_view path, std::string_view why);

}  // namespace dbstep::drivers
