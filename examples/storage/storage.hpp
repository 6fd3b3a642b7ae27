#pragma once
// An application's storage layer whose open() migrates its database before handing it out: the
// library use of dbstep. Storage::open(path) opens the SQLite file with SQLiteCpp, has dbstep
// back it up first (MigratorOptions::backup: SQLite's online backup API, under the migration
// lock) when migrations are pending and it already holds a schema, applies the migrations compiled into the program (dbstep_embed_migrations), and returns it ready.
// Safe when several processes open the same database at once: each migration runs exactly once.

#include <SQLiteCpp/SQLiteCpp.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "dbstep/dbstep.hpp"

namespace storage {

struct Options {
  // Copy the database to <db>.backup-v<version>-<YYYYMMDD-HHMMSS> (UTC) before applying
  // migrations to a database that already holds a schema (dbstep's MigratorOptions::backup).
  // Never done for a new or empty database, nor when nothing is pending.
  bool backup = true;
  // Where open() says what it did; stderr by default.
  std::function<void(const std::string&)> log;
  // The migrations to apply; the ones compiled into the program by default. (Tests use a folder.)
  std::function<std::unique_ptr<dbstep::Source>()> migrations;
};

// open() failed: the message says which migration failed, why, the version the database is at,
// and where the backup is.
class Error : public std::runtime_error {
 public:
  Error(const std::string& message, std::optional<std::filesystem::path> backup)
      : std::runtime_error(message), backup_(std::move(backup)) {}
  const std::optional<std::filesystem::path>& backup() const { return backup_; }

 private:
  std::optional<std::filesystem::path> backup_;
};

struct Note {
  std::int64_t id = 0;
  std::string notebook;
  std::string title;
  std::string body;
  bool pinned = false;
};

class Storage {
 public:
  static Storage open(const std::filesystem::path& path, Options options = {});

  std::int64_t add_note(const std::string& title, const std::string& body, bool pinned = false);
  std::vector<Note> notes();

  SQLite::Database& db() { return *db_; }
  const dbstep::Result& migration() const { return migration_; }  // what open() applied
  const std::optional<std::filesystem::path>& backup() const { return backup_; }

 private:
  Storage(std::unique_ptr<SQLite::Database> db, dbstep::Result migration,
          std::optional<std::filesystem::path> backup)
      : db_(std::move(db)), migration_(std::move(migration)), backup_(std::move(backup)) {}

  std::unique_ptr<SQLite::Database> db_;
  dbstep::Result migration_;
  std::optional<std::filesystem::path> backup_;
};

}  // namespace storage
