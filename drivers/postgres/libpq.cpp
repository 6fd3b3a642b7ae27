#include "drivers/postgres/libpq.hpp"

#include <dlfcn.h>
#include <fmt/format.h>

#include "core/error.hpp"

namespace dbstep::drivers {

namespace {

// libpq's soname: its ABI has been stable since PostgreSQL 8.2. Pipeline mode needs libpq 14 or
// later, which a missing symbol below reports.
constexpr const char* kLibpq = "libpq.so.5";

Libpq load() {
  // Never unloaded: libpq keeps global state (SSL, Kerberos) for the life of the process.
  void* handle = dlopen(kLibpq, RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    throw Error(ErrorCode::kDatabase,
                fmt::format("PostgreSQL needs libpq, which could not be loaded: {} (on Debian "
                            "and Ubuntu: apt-get install libpq5)",
                            dlerror()));
  }
  Libpq api;
  const char* missing = nullptr;
  auto bind = [&](auto& pointer, const char* name) {
    void* symbol = dlsym(handle, name);
    if (!symbol && !missing) missing = name;
    pointer = reinterpret_cast<std::remove_reference_t<decltype(pointer)>>(symbol);
  };
#define DBSTEP_LIBPQ_BIND(name) bind(api.name, #name);
  DBSTEP_LIBPQ_FUNCTIONS(DBSTEP_LIBPQ_BIND)
#undef DBSTEP_LIBPQ_BIND
  if (missing) {
    throw Error(ErrorCode::kDatabase,
                fmt::format("the libpq found ({}) has no {}: dbstep needs libpq 14 or later",
                            kLibpq, missing));
  }
  return api;
}

}  // namespace

const Libpq& pq() {
  static const Libpq api = load();
  return api;
}

}  // namespace dbstep::drivers
