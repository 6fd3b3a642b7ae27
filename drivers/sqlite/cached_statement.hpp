#pragma once
// Statements the SQLite driver runs once or more per migration (the version table's SELECT,
// DELETE and INSERT), prepared once per connection, and the guard that resets one after use.
// Internal to drivers/sqlite.

#include <sqlite3.h>

#include <string>

namespace dbstep::drivers::sqlite {

// A statement the driver runs once or more per migration (the version table's SELECT, DELETE and
// INSERT), prepared on first use and then reused: preparing it anew each time cost more than
// running it. SQLite re-prepares it by itself when the schema changes (the version table dropped
// and made again, by a migration, drop() or another connection). It must be finalized before the
// connection closes (sqlite3_close refuses while statements remain).
class CachedStatement {
 public:
  CachedStatement() = default;
  CachedStatement(const CachedStatement&) = delete;
  CachedStatement& operator=(const CachedStatement&) = delete;
  ~CachedStatement() { finalize(); }

  void set_sql(std::string sql) {
    finalize();
    sql_ = std::move(sql);
  }
  // The statement, prepared on `db` on first use; nullptr when it cannot be prepared
  // (sqlite3_errmsg says why). Callers reset() it after each use, error or not (ResetAfterUse):
  // a statement left active holds its read, and DROP TABLE or VACUUM on the connection fail.
  sqlite3_stmt* get(sqlite3* db) {
    if (!stmt_) {
      sqlite3_prepare_v3(db, sql_.c_str(), static_cast<int>(sql_.size()) + 1,
                         SQLITE_PREPARE_PERSISTENT, &stmt_, nullptr);
    }
    return stmt_;
  }
  void reset() noexcept {
    if (stmt_) sqlite3_reset(stmt_);
  }
  void finalize() noexcept {
    sqlite3_finalize(stmt_);
    stmt_ = nullptr;
  }

 private:
  std::string sql_;
  sqlite3_stmt* stmt_ = nullptr;
};

// Resets a CachedStatement when the scope ends. The error of a failed step has been read (or put
// into the thrown Error) before that.
class ResetAfterUse {
 public:
  explicit ResetAfterUse(CachedStatement& statement) : statement_(statement) {}
  ~ResetAfterUse() { statement_.reset(); }
  ResetAfterUse(const ResetAfterUse&) = delete;
  ResetAfterUse& operator=(const ResetAfterUse&) = delete;

 private:
  CachedStatement& statement_;
};

}  // namespace dbstep::drivers::sqlite
