#include "drivers/sqlite/backup.hpp"

#include <SQLiteCpp/Backup.h>
#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Exception.h>
#include <SQLiteCpp/Statement.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>

#include "core/error.hpp"
#include "drivers/sqlite/driver_sql.hpp"

namespace dbstep::drivers::sqlite {

namespace {

// "20261201-131500", now, UTC: the time in a backup's name.
std::string utc_stamp() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  ::gmtime_r(&now, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y%m%d-%H%M%S", &tm);
  return text;
}

}  // namespace

std::optional<std::string> back_up(SQLite::Database& db, const std::string& path,
                                   std::string_view database, const DbState& state, int busy_ms) {
  try {
    // A database without a single table, index or view (a new, empty file) holds nothing
    // either. Not being able to tell (the database locked past the busy timeout) is an error:
    // read as "empty", it skipped the backup the user asked for and let the run go on.
    SQLite::Statement any(db, "SELECT 1 FROM sqlite_master LIMIT 1");
    if (!any.executeStep()) return std::nullopt;
  } catch (const SQLite::Exception& e) {
    throw Error(ErrorCode::kDatabase,
                fmt::format("cannot back up {}: cannot read its schema: {}; no migration was run",
                            database, e.what()));
  }
  const std::string target =
      fmt::format("{}.backup-v{}-{}", path, to_string(state.version), utc_stamp());
  auto failed = [&](std::string_view why) {
    return Error(
        ErrorCode::kDatabase,
        fmt::format("cannot back up {} to {}: {}; no migration was run", database, target, why));
  };
  // O_EXCL: an existing file of that name (another backup this second) is never
  // overwritten.
  const int fd = ::open(target.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) throw failed(std::strerror(errno));
  ::close(fd);
  auto remove_copy = [&] {
    std::error_code ec;
    std::filesystem::remove(target, ec);
    std::filesystem::remove(target + "-journal", ec);
  };
  try {
    SQLite::Database copy(target, SQLite::OPEN_READWRITE);
    SQLite::Backup backup(copy, db);
    // Every page in one step, so the copy is one consistent moment. Another
    // connection writing (BUSY, LOCKED) is waited for up to the busy timeout.
    int rc = SQLITE_OK;
    if (!retry_while_busy(busy_ms, [&] {
          rc = backup.executeStep(-1);
          return rc != SQLITE_BUSY && rc != SQLITE_LOCKED;
        })) {
      throw SQLite::Exception("the database stayed locked by another connection", rc);
    }
    if (rc != SQLITE_DONE) throw SQLite::Exception("the copy did not finish", rc);
  } catch (const SQLite::Exception& e) {
    remove_copy();
    throw failed(e.what());
  }
  return target;
}

}  // namespace dbstep::drivers::sqlite
