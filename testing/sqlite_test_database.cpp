#include "testing/sqlite_test_database.hpp"

#include <fmt/format.h>
#include <stdlib.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>
#include <optional>
#include <regex>
#include <system_error>

#include "core/checksum.hpp"
#include "core/error.hpp"
#include "core/url.hpp"
#include "drivers/sqlite/sqlite_driver.hpp"
#include "testing/file_lock.hpp"
#include "testing/move.hpp"

namespace dbstep::testing {

namespace fs = std::filesystem;

namespace {

std::string sqlite_url(const fs::path& path) { return url_for_path("sqlite", path.string()); }

MigratorOptions migrator_options(const Options& options) {
  MigratorOptions m;
  m.lock_timeout = options.lock_timeout;
  m.record_history = options.record_history;
  return m;
}

// Removes a database file and what SQLite and dbstep leave beside it. Never throws.
void remove_database_files(const fs::path& path) {
  std::error_code ec;
  for (const char* suffix : {"", "-journal", "-wal", "-shm", ".dbstep-lock"}) {
    fs::remove(path.string() + suffix, ec);
  }
}

fs::path test_folder(const Options& options) {
  return options.folder.empty() ? fs::temp_directory_path() : options.folder;
}

// The folder of one origin's templates: <template folder>/<12 hex of the origin>.
fs::path origin_folder(const MigrationSet& set, const Options& options) {
  fs::path root = options.template_folder.empty()
                      ? fs::temp_directory_path() / fmt::format("dbstep-templates-{}", ::getuid())
                      : options.template_folder;
  return root / migration_checksum(set.origin()).substr(0, 12);
}

// Under the origin's lock: removes templates of other checksums (the set changed) and files left by
// a build that died. Files another process is copying stay readable until it closes them.
void clean_origin_folder(const fs::path& folder, const std::string& keep_prefix) {
  static const std::regex kTemplate("([0-9a-f]{12})-v[0-9]+\\.sqlite");
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(folder, ec)) {
    const std::string name = entry.path().filename().string();
    std::smatch m;
    bool stale_template = std::regex_match(name, m, kTemplate) && m[1].str() != keep_prefix;
    bool dead_build = name.find(".building-") != std::string::npos;
    if (stale_template || dead_build) {
      std::error_code ignored;
      fs::remove(entry.path(), ignored);
    }
  }
}

// A new empty file for a test database in `folder`.
fs::path new_database_file(const fs::path& folder) {
  std::string pattern = (folder / "dbstep-test-XXXXXX.sqlite").string();
  int fd = ::mkstemps(pattern.data(), 7);
  if (fd < 0) {
    throw Error(ErrorCode::kDatabase, fmt::format("cannot create a test database in {}: {}",
                                                  folder.string(), std::strerror(errno)));
  }
  ::close(fd);
  return pattern;
}

}  // namespace

struct SqliteTestDatabase::Impl {
  MigrationSet set;
  Options options;
  fs::path path;
  std::optional<SQLite::Database> db;
  std::unique_ptr<Migrator> migrator;

  Impl(MigrationSet s, Options o, fs::path p)
      : set(std::move(s)), options(std::move(o)), path(std::move(p)) {}

  ~Impl() {
    migrator.reset();
    db.reset();
    if (options.keep) {
      std::cerr << "dbstep::testing: kept the test database " << path.string() << "\n";
    } else {
      remove_database_files(path);
    }
  }

  void open() {
    try {
      db.emplace(path.string(), SQLite::OPEN_READWRITE);
      db->setBusyTimeout(5000);
    } catch (const std::exception& e) {
      throw Error(ErrorCode::kDatabase,
                  fmt::format("cannot open the test database {}: {}", path.string(), e.what()));
    }
  }
};

SqliteTestDatabase::SqliteTestDatabase(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SqliteTestDatabase::SqliteTestDatabase(SqliteTestDatabase&&) noexcept = default;
SqliteTestDatabase& SqliteTestDatabase::operator=(SqliteTestDatabase&&) noexcept = default;
SqliteTestDatabase::~SqliteTestDatabase() = default;

SqliteTestDatabase SqliteTestDatabase::empty(const MigrationSet& set, const Options& options) {
  auto impl = std::make_unique<Impl>(set, options, new_database_file(test_folder(options)));
  impl->open();
  return SqliteTestDatabase(std::move(impl));
}

SqliteTestDatabase SqliteTestDatabase::from_template(const MigrationSet& set,
                                                     const Options& options) {
  return from_template(set, set.latest(), options);
}

SqliteTestDatabase SqliteTestDatabase::from_template(const MigrationSet& set, Version version,
                                                     const Options& options) {
  auto impl = std::make_unique<Impl>(set, options, new_database_file(test_folder(options)));
  // A template can vanish between template_file() and the copy only when another process built a
  // template of the same origin with another checksum (the files changed under a running suite) and
  // removed this one: build it again.
  for (int attempt = 1;; ++attempt) {
    fs::path source = template_file(set, version, options);
    std::error_code ec;
    fs::copy_file(source, impl->path, fs::copy_options::overwrite_existing, ec);
    if (!ec) break;
    if (ec != std::errc::no_such_file_or_directory || attempt == 3) {
      throw Error(ErrorCode::kDatabase,
                  fmt::format("cannot copy the template {} to {}: {}", source.string(),
                              impl->path.string(), ec.message()));
    }
  }
  impl->open();
  return SqliteTestDatabase(std::move(impl));
}

fs::path SqliteTestDatabase::template_file(const MigrationSet& set, Version version,
                                           const Options& options) {
  if (!set.contains(version)) {
    Error error(ErrorCode::kMissingVersion,
                fmt::format("no template at version {}: {} has no migration {} (latest: {})",
                            version, set.origin(), version, set.latest()));
    error.version = version;
    throw error;
  }
  const fs::path folder = origin_folder(set, options);
  const std::string prefix = set.checksum().substr(0, 12);
  const fs::path path = folder / fmt::format("{}-v{}.sqlite", prefix, version);
  // Published by rename(), so a file that exists is complete.
  if (fs::exists(path)) return path;

  std::error_code ec;
  fs::create_directories(folder, ec);
  if (ec) {
    throw Error(ErrorCode::kDatabase, fmt::format("cannot create the template folder {}: {}",
                                                  folder.string(), ec.message()));
  }
  FileLock lock(
      folder / ".lock", options.lock_timeout,
      fmt::format("to build the template {} of {}", path.filename().string(), set.origin()));
  if (fs::exists(path)) return path;  // built while this process waited

  clean_origin_folder(folder, prefix);
  const fs::path building = path.string() + fmt::format(".building-{}", ::getpid());
  remove_database_files(building);
  try {
    Migrator migrator(set.open(), drivers::open_sqlite(Url::parse(sqlite_url(building))),
                      migrator_options(options));
    move_to(migrator, version, "the template " + building.string());
  } catch (...) {
    remove_database_files(building);
    throw;
  }
  remove_database_files(building.string() + ".dbstep-lock");
  fs::rename(building, path, ec);
  if (ec) {
    remove_database_files(building);
    throw Error(ErrorCode::kDatabase,
                fmt::format("cannot publish the template {}: {}", path.string(), ec.message()));
  }
  return path;
}

void SqliteTestDatabase::run_path(const MigrationSet& set,
                                  const std::vector<PathStep<SQLite::Database>>& steps,
                                  const Options& options) {
  run_migration_path(steps, [&](OptVersion from) {
    return from ? from_template(set, *from, options) : empty(set, options);
  });
}

void SqliteTestDatabase::drop_templates(const MigrationSet& set, const Options& options) {
  const fs::path folder = origin_folder(set, options);
  if (!fs::exists(folder)) return;
  {
    FileLock lock(folder / ".lock", options.lock_timeout, "to build a template of " + set.origin());
    clean_origin_folder(folder, "");
  }
  std::error_code ec;
  fs::remove_all(folder, ec);
}

SQLite::Database& SqliteTestDatabase::db() { return *impl_->db; }

Migrator& SqliteTestDatabase::migrator() {
  if (!impl_->migrator) {
    impl_->migrator =
        std::make_unique<Migrator>(impl_->set.open(), drivers::open_sqlite(Url::parse(url())),
                                   migrator_options(impl_->options));
  }
  return *impl_->migrator;
}

void SqliteTestDatabase::migrate_to(Version version) {
  move_to(migrator(), version, "the test database " + impl_->path.string());
}

void SqliteTestDatabase::migrate_up() { migrate_to(impl_->set.latest()); }

void SqliteTestDatabase::migrate_down_all() {
  move_to(migrator(), std::nullopt, "the test database " + impl_->path.string());
}

std::string SqliteTestDatabase::schema() { return migrator().driver().schema_snapshot(); }

OptVersion SqliteTestDatabase::version() { return migrator().state().version; }

const fs::path& SqliteTestDatabase::path() const { return impl_->path; }

std::string SqliteTestDatabase::url() const { return sqlite_url(impl_->path); }

}  // namespace dbstep::testing
