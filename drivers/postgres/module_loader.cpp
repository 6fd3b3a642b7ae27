#include "drivers/postgres/module.hpp"

#include <dlfcn.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <vector>

#include "core/error.hpp"
#include "core/history.hpp"

#ifndef DBSTEP_MODULE_LIBDIR
#define DBSTEP_MODULE_LIBDIR "lib"
#endif

namespace dbstep::drivers {

namespace {

namespace fs = std::filesystem;

// Where the module may be, in the order looked at.
std::vector<fs::path> candidates() {
  std::vector<fs::path> out;
  if (const char* env = std::getenv("DBSTEP_POSTGRES_MODULE"); env && *env) {
    out.emplace_back(env);
    return out;
  }
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return out;
  const fs::path dir = exe.parent_path();
  out.push_back(dir / kPostgresModuleFile);
  out.push_back(dir / ".." / "lib" / "dbstep" / kPostgresModuleFile);
  if (std::string_view(DBSTEP_MODULE_LIBDIR) != "lib") {
    out.push_back(dir / ".." / DBSTEP_MODULE_LIBDIR / "dbstep" / kPostgresModuleFile);
  }
  return out;
}

const PostgresModule* load() {
  const auto places = candidates();
  for (const auto& path : places) {
    std::error_code ec;
    if (!fs::exists(path, ec)) continue;
    // Never unloaded: libpq keeps global state (SSL, Kerberos) for the life of the process.
    // RTLD_LAZY, as the loader treats a program's own libraries: RTLD_NOW would bind every
    // function of the module and of the libraries it brings (libpq, OpenSSL, Kerberos, LDAP,
    // GnuTLS ...) before the first query, about 13 M instructions, more than the whole
    // up-to-date run of psql. A library that is missing still fails here, by name.
    void* handle = dlopen(path.c_str(), RTLD_LAZY | RTLD_LOCAL);
    if (!handle) {
      const char* why = dlerror();
      throw Error(ErrorCode::kDatabase, module_load_error(path.string(), why ? why : "unknown"));
    }
    using Entry = const PostgresModule* (*)();
    auto entry = reinterpret_cast<Entry>(dlsym(handle, kPostgresModuleEntry));
    const PostgresModule* api = entry ? entry() : nullptr;
    if (!api) {
      throw Error(ErrorCode::kDatabase,
                  fmt::format("{} is not dbstep's PostgreSQL module (no {}): reinstall dbstep",
                              path.string(), kPostgresModuleEntry));
    }
    if (api->abi != kPostgresModuleAbi || std::strcmp(api->release, dbstep_release()) != 0) {
      throw Error(ErrorCode::kDatabase,
                  fmt::format("{} is the PostgreSQL module of dbstep {} (module ABI {}), this "
                              "dbstep is {} (ABI {}): install the two from the same build",
                              path.string(), api->release, api->abi, dbstep_release(),
                              kPostgresModuleAbi));
    }
    return api;
  }
  std::vector<std::string> looked;
  for (const auto& p : places) looked.push_back(p.lexically_normal().string());
  throw Error(ErrorCode::kDatabase,
              fmt::format("PostgreSQL support is dbstep's module {}, which is not installed "
                          "(looked for {}): build and install dbstep with its PostgreSQL driver "
                          "(cmake --install puts it in lib/dbstep/), or set "
                          "DBSTEP_POSTGRES_MODULE to its path",
                          kPostgresModuleFile, fmt::join(looked, ", ")));
}

}  // namespace

std::string module_load_error(std::string_view path, std::string_view why) {
  std::string advice;
  if (why.find("libpqxx") != std::string_view::npos) {
    advice = "PostgreSQL needs libpqxx 6.4 (on Debian and Ubuntu: apt-get install libpqxx-6.4)";
  } else if (why.find("libpq.so") != std::string_view::npos) {
    advice = "PostgreSQL needs libpq (on Debian and Ubuntu: apt-get install libpq5)";
  } else {
    advice = "PostgreSQL support could not be loaded (on Debian and Ubuntu: apt-get install "
             "libpqxx-6.4 libpq5, and reinstall dbstep)";
  }
  return fmt::format("{}: loading {} failed: {}", advice, path, why);
}

namespace {

const PostgresModule& module() {
  static std::mutex mutex;
  static const PostgresModule* api = nullptr;
  std::lock_guard<std::mutex> guard(mutex);
  if (!api) api = load();
  return *api;
}

}  // namespace

std::unique_ptr<Driver> open_postgres_module(const Url& url) { return module().open(url); }

PendingDriver start_postgres_module(const Url& url) { return module().start(url); }

}  // namespace dbstep::drivers
