#pragma once
// A database for the end-to-end safety suites (crash_test.cpp, concurrency_test.cpp): a fresh
// SQLite file in a temporary folder, or a fresh database of its own on the PostgreSQL server at
// $DBSTEP_TEST_POSTGRES_URL (without it the PostgreSQL cases fail, never skip). The suites run the
// `dbstep` binary against url() and judge the result by snapshot(): everything the database holds,
// read in one transaction through a connection of the test's own, in one shape for both drivers,
// so that the same checks and the same "equals an uninterrupted run" comparison serve both.

#include <SQLiteCpp/SQLiteCpp.h>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "tests/postgres_server.hpp"
#include "tests/support.hpp"

namespace dbstep::testing {

enum class DriverKind { kSqlite, kPostgres };

inline const char* name_of(DriverKind kind) {
  return kind == DriverKind::kSqlite ? "sqlite" : "postgres";
}

// What a database holds. Tables whose name starts with "schema_" are dbstep's bookkeeping (the
// version table, its history, x-lock-strategy=table's lock table): they are not in `tables`; the
// version table's row is in `version` / `dirty` / `version_rows`.
struct Snapshot {
  std::optional<std::int64_t> version;  // none: no row (golang-migrate's -1 reads as -1)
  bool dirty = false;
  int version_rows = 0;                 // golang-migrate's table holds at most one
  // Table name -> its rows, each row its columns as text joined by '|', sorted.
  std::map<std::string, std::vector<std::string>> tables;

  bool operator==(const Snapshot&) const = default;
};

inline std::string describe(const Snapshot& s) {
  std::string out = fmt::format("version {}{} ({} row(s)); {} table(s):",
                                s.version ? std::to_string(*s.version) : "none",
                                s.dirty ? " dirty" : "", s.version_rows, s.tables.size());
  for (const auto& [name, rows] : s.tables) {
    out += fmt::format(" {}[{}]", name, fmt::join(rows, ","));
  }
  return out;
}

class TestTarget {
 public:
  virtual ~TestTarget() = default;
  virtual DriverKind kind() const = 0;
  // The URL dbstep is given, with extra query parameters ("x-lock-strategy=table") if any.
  virtual std::string url(std::string_view params = "") const = 0;
  // Waits until no other client is connected (a killed dbstep's PostgreSQL session may still be
  // running what it sent), then reads everything in one transaction.
  virtual Snapshot snapshot() const = 0;
  // Runs `sql` (one or more statements) through a connection of the test's own.
  virtual void exec(const std::string& sql) const = 0;
};

class SqliteTarget final : public TestTarget {
 public:
  explicit SqliteTarget(std::filesystem::path file) : file_(std::move(file)) {}
  DriverKind kind() const override { return DriverKind::kSqlite; }
  std::string url(std::string_view params) const override {
    return "sqlite://" + file_.string() + (params.empty() ? "" : "?" + std::string(params));
  }
  Snapshot snapshot() const override {
    Snapshot s;
    if (!std::filesystem::exists(file_)) return s;
    // Read-write: a killed writer's hot journal is rolled back on open, as any next user's would be.
    SQLite::Database db(file_.string(), SQLite::OPEN_READWRITE);
    db.setBusyTimeout(10000);
    db.exec("BEGIN");
    std::vector<std::string> names;
    {
      SQLite::Statement q(db, "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT "
                              "LIKE 'sqlite_%' ORDER BY name");
      while (q.executeStep()) names.push_back(q.getColumn(0).getString());
    }
    for (const auto& name : names) {
      if (name == "schema_migrations") {
        SQLite::Statement q(db, "SELECT version, dirty FROM schema_migrations");
        while (q.executeStep()) {
          ++s.version_rows;
          s.version = q.getColumn(0).getInt64();
          s.dirty = q.getColumn(1).getInt() != 0;
        }
      }
      if (name.rfind("schema_", 0) == 0) continue;
      auto& rows = s.tables[name];
      SQLite::Statement q(db, fmt::format("SELECT * FROM \"{}\"", name));
      while (q.executeStep()) {
        std::vector<std::string> cols;
        for (int i = 0; i < q.getColumnCount(); ++i) {
          cols.push_back(q.getColumn(i).isNull() ? "NULL" : q.getColumn(i).getString());
        }
        rows.push_back(fmt::format("{}", fmt::join(cols, "|")));
      }
      std::sort(rows.begin(), rows.end());
    }
    db.exec("COMMIT");
    return s;
  }
  void exec(const std::string& sql) const override {
    SQLite::Database(file_.string(), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE).exec(sql);
  }

 private:
  std::filesystem::path file_;
};

class PostgresTarget final : public TestTarget {
 public:
  PostgresTarget() {
    std::random_device rd;
    name_ = fmt::format("e2e_{:08x}{:08x}", rd(), rd());
    PgConnection(postgres_server_url()).query("CREATE DATABASE " + name_);
    url_ = url_with_database(postgres_server_url(), name_);
  }
  ~PostgresTarget() override {
    try {
      PgConnection(postgres_server_url()).query("DROP DATABASE IF EXISTS " + name_ + " WITH (FORCE)");
    } catch (...) {
    }
  }
  PostgresTarget(const PostgresTarget&) = delete;
  PostgresTarget& operator=(const PostgresTarget&) = delete;

  DriverKind kind() const override { return DriverKind::kPostgres; }
  std::string url(std::string_view params) const override { return url_with_params(url_, params); }
  Snapshot snapshot() const override {
    PgConnection c(url_);
    // A killed client's session ends once the server has run what it had already received.
    const std::string others =
        "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() AND "
        "backend_type = 'client backend' AND pid <> pg_backend_pid()";
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (c.query(others)[0][0] != "0") {
      if (std::chrono::steady_clock::now() > deadline) {
        throw std::runtime_error("a session on " + name_ + " did not end within 20 s of its client's exit");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    Snapshot s;
    c.query("BEGIN ISOLATION LEVEL REPEATABLE READ");
    for (const auto& t : c.query("SELECT tablename FROM pg_tables WHERE schemaname = "
                                 "current_schema() ORDER BY tablename")) {
      const std::string& name = t[0];
      if (name == "schema_migrations") {
        for (const auto& row : c.query("SELECT version, dirty FROM schema_migrations")) {
          ++s.version_rows;
          s.version = std::stoll(row[0]);
          s.dirty = row[1] == "t";
        }
      }
      if (name.rfind("schema_", 0) == 0) continue;
      auto& rows = s.tables[name];
      for (const auto& row : c.query(fmt::format("SELECT * FROM \"{}\"", name))) {
        rows.push_back(fmt::format("{}", fmt::join(row, "|")));
      }
      std::sort(rows.begin(), rows.end());
    }
    c.query("COMMIT");
    return s;
  }
  void exec(const std::string& sql) const override { PgConnection(url_).query(sql); }

 private:
  std::string name_, url_;
};

// A fresh database of `kind`; a SQLite file `name`.db goes in `dir`.
inline std::unique_ptr<TestTarget> make_target(DriverKind kind, const std::filesystem::path& dir,
                                               const std::string& name) {
  if (kind == DriverKind::kSqlite) return std::make_unique<SqliteTarget>(dir / (name + ".db"));
  return std::make_unique<PostgresTarget>();
}

}  // namespace dbstep::testing
