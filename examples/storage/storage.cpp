#include "examples/storage/storage.hpp"

#include <chrono>
#include <iostream>

#include <fmt/format.h>

#include "dbstep_embedded/storage_migrations.hpp"

namespace storage {

namespace {

// Logs the backup (made by dbstep under the migration lock, MigratorOptions::backup) and each
// migration.
class OpenObserver final : public dbstep::Observer {
 public:
  OpenObserver(const std::filesystem::path& path, const Options& options)
      : path_(path), options_(options) {}

  void on_plan(const dbstep::Plan& plan) override { from_ = plan.from; }

  void on_backup(const std::string& backup) override {
    options_.log(fmt::format("backed up {} (version {}) to {} before migrating", path_.string(),
                             dbstep::to_string(from_), backup));
  }

  void on_step_finished(const dbstep::AppliedStep& step) override {
    options_.log(fmt::format("applied migration {}: {} ({:.1f} ms)", step.version,
                             step.identifier,
                             std::chrono::duration<double, std::milli>(step.duration).count()));
  }

 private:
  const std::filesystem::path& path_;
  const Options& options_;
  dbstep::OptVersion from_;
};

}  // namespace

Storage Storage::open(const std::filesystem::path& path, Options options) {
  if (!options.log) {
    options.log = [](const std::string& line) { std::cerr << "storage: " << line << "\n"; };
  }
  auto db = std::make_unique<SQLite::Database>(path.string(),
                                               SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
  db->setBusyTimeout(15000);

  auto source = options.migrations
                    ? options.migrations()
                    : dbstep::sources::open_embedded(dbstep_embedded::storage_migrations());
  OpenObserver observer(path, options);
  dbstep::MigratorOptions migrator_options;
  migrator_options.observer = &observer;
  // Before migrating a database that holds a schema, dbstep copies it with SQLite's online
  // backup API to <db>.backup-v<version>-<YYYYMMDD-HHMMSS> (UTC), under the migration lock; a
  // new or empty database, or one with nothing pending, is not copied.
  migrator_options.backup = options.backup;
  auto migrator = dbstep::open(dbstep::url_for_path("sqlite", path.string()), std::move(source), migrator_options);

  dbstep::Result result = migrator.up();
  std::optional<std::filesystem::path> backup;
  if (result.backup) backup = *result.backup;
  if (!result.ok()) {
    throw Error(fmt::format("cannot open {}: {}{}", path.string(), result.error->what(),
                            backup ? fmt::format(". The database as it was before migrating is "
                                                 "saved in {}",
                                                 backup->string())
                                   : ""),
                backup);
  }
  db->exec("PRAGMA foreign_keys = ON");
  return Storage(std::move(db), std::move(result), std::move(backup));
}

std::int64_t Storage::add_note(const std::string& title, const std::string& body, bool pinned) {
  SQLite::Statement insert(*db_,
                           "INSERT INTO notes (notebook_id, title, body, pinned) VALUES (1, ?, ?, ?)");
  insert.bind(1, title);
  insert.bind(2, body);
  insert.bind(3, pinned ? 1 : 0);
  insert.exec();
  return db_->getLastInsertRowid();
}

std::vector<Note> Storage::notes() {
  SQLite::Statement q(*db_,
                      "SELECT n.id, b.name, n.title, n.body, n.pinned FROM notes n JOIN notebooks "
                      "b ON b.id = n.notebook_id ORDER BY n.pinned DESC, n.id");
  std::vector<Note> out;
  while (q.executeStep()) {
    out.push_back(Note{q.getColumn(0).getInt64(), q.getColumn(1).getString(),
                       q.getColumn(2).getString(), q.getColumn(3).getString(),
                       q.getColumn(4).getInt() != 0});
  }
  return out;
}

}  // namespace storage
