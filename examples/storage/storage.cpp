#include "examples/storage/storage.hpp"

#include <SQLiteCpp/Backup.h>

#include <chrono>
#include <ctime>
#include <iostream>

#include <fmt/format.h>

#include "dbstep_embedded/storage_migrations.hpp"

namespace storage {

namespace {

std::string sqlite_url(const std::filesystem::path& path) {
  std::string url = "sqlite://";
  for (char c : path.string()) {
    if (c == '%') url += "%25";
    else if (c == '?') url += "%3F";
    else url += c;
  }
  return url;
}

// True when any of the application's tables holds a row: a schema with no rows yet (another
// process may have just created it) is not worth a backup.
bool has_data(SQLite::Database& db) {
  SQLite::Statement tables(db,
                           "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT "
                           "LIKE 'sqlite\\_%' ESCAPE '\\' AND name <> 'schema_migrations'");
  std::vector<std::string> names;
  while (tables.executeStep()) names.push_back(tables.getColumn(0).getString());
  for (const auto& name : names) {
    std::string quoted = "\"";
    for (char c : name) quoted += c == '"' ? std::string("\"\"") : std::string(1, c);
    quoted += "\"";
    if (db.execAndGet("SELECT EXISTS (SELECT 1 FROM " + quoted + ")").getInt() != 0) return true;
  }
  return false;
}

std::filesystem::path backup_path(const std::filesystem::path& db, const dbstep::OptVersion& v) {
  std::time_t now = std::time(nullptr);
  std::tm local{};
  localtime_r(&now, &local);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &local);
  std::filesystem::path base = db.string() + fmt::format(".backup-v{}-{}", v ? *v : 0, stamp);
  std::filesystem::path path = base;
  for (int i = 2; std::filesystem::exists(path); ++i) path = base.string() + "-" + std::to_string(i);
  return path;
}

// Logs each migration, and makes the backup when the plan is known: the run then holds the
// migration lock and has read the version, so a process that lost the race to another one
// sees nothing pending and makes no backup.
class OpenObserver final : public dbstep::Observer {
 public:
  OpenObserver(const std::filesystem::path& path, SQLite::Database& db, const Options& options)
      : path_(path), db_(db), options_(options) {}

  void on_plan(const dbstep::Plan& plan) override {
    if (plan.steps.empty() || backup || !options_.backup || !has_data(db_)) return;
    auto target = backup_path(path_, plan.from);
    try {
      SQLite::Database copy(target.string(), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
      SQLite::Backup(copy, db_).executeStep();  // the whole database, consistently
    } catch (const std::exception& e) {
      throw dbstep::Error(dbstep::ErrorCode::kDatabase,
                          fmt::format("cannot back up {} to {} before migrating ({}); nothing "
                                      "was migrated",
                                      path_.string(), target.string(), e.what()));
    }
    backup = target;
    options_.log(fmt::format("backed up {} (version {}) to {} before migrating", path_.string(),
                             dbstep::to_string(plan.from), target.string()));
  }

  void on_step_finished(const dbstep::AppliedStep& step) override {
    options_.log(fmt::format("applied migration {}: {} ({:.1f} ms)", step.version,
                             step.identifier,
                             std::chrono::duration<double, std::milli>(step.duration).count()));
  }

  std::optional<std::filesystem::path> backup;

 private:
  const std::filesystem::path& path_;
  SQLite::Database& db_;
  const Options& options_;
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
  OpenObserver observer(path, *db, options);
  dbstep::MigratorOptions migrator_options;
  migrator_options.observer = &observer;
  auto migrator = dbstep::open(sqlite_url(path), std::move(source), migrator_options);

  dbstep::Result result = migrator.up();
  if (!result.ok()) {
    throw Error(fmt::format("cannot open {}: {}{}", path.string(), result.error->what(),
                            observer.backup ? fmt::format(". The database as it was before "
                                                          "migrating is saved in {}",
                                                          observer.backup->string())
                                            : ""),
                observer.backup);
  }
  db->exec("PRAGMA foreign_keys = ON");
  return Storage(std::move(db), std::move(result), std::move(observer.backup));
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
