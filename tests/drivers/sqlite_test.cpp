// The SQLite driver: the shared conformance suite on real database files, then what is SQLite's
// own (URL forms, golang-migrate's sqlite3 table shape, files with their own BEGIN/COMMIT).

#include <doctest/doctest.h>
#include <sqlite3.h>

#include <SQLiteCpp/SQLiteCpp.h>
#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <unistd.h>
#include <string>
#include <thread>

#include "core/url.hpp"
#include "drivers/sqlite/sqlite_driver.hpp"
#include "tests/drivers/conformance.hpp"
#include "tests/support.hpp"

namespace {

using namespace dbstep;
using dbstep::testing::capture_error;
using dbstep::testing::TempDir;
using dbstep::testing::up_step;

struct SqliteFixture {
  static constexpr const char* kName = "sqlite";
  TempDir dir;
  std::string file = (dir / "test.db").string();

  std::unique_ptr<Driver> open(std::string_view params = "") {
    std::string url = "sqlite://" + file;
    if (!params.empty()) url += "?" + std::string(params);
    return drivers::open_sqlite(Url::parse(url));
  }
  SQLite::Database connect() { return SQLite::Database(file, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE); }
  std::int64_t query_int(std::string_view sql) {
    auto db = connect();
    return db.execAndGet(std::string(sql)).getInt64();
  }
  bool table_exists(std::string_view name) {
    auto db = connect();
    SQLite::Statement q(db, "SELECT COUNT(*) FROM sqlite_master WHERE name = ? AND type IN ('table', 'view')");
    q.bind(1, std::string(name));
    q.executeStep();
    return q.getColumn(0).getInt() > 0;
  }
  void exec(std::string_view sql) {
    auto db = connect();
    db.exec(std::string(sql));
  }
};

}  // namespace

TEST_CASE_TEMPLATE_INVOKE(driver_conformance, SqliteFixture);

TEST_CASE("sqlite: URL forms name the same file") {
  TempDir dir;
  auto abs = (dir / "abs.db").string();
  drivers::open_sqlite(Url::parse("sqlite://" + abs))->set_state({7, false});
  CHECK(drivers::open_sqlite(Url::parse("sqlite3://" + abs))->state() == DbState{7, false});
  // sqlite:///abs is the absolute path /abs.
  CHECK(Url::parse("sqlite://" + abs).body() == abs);
  CHECK(Url::parse("sqlite:///var/x.db").body() == "/var/x.db");
  CHECK(Url::parse("sqlite://rel/x.db").body() == "rel/x.db");
  auto e = capture_error([] { drivers::open_sqlite(Url::parse("sqlite://")); });
  CHECK(e.code() == ErrorCode::kInvalidArgument);
  auto bad = capture_error([&] { drivers::open_sqlite(Url::parse("sqlite://" + abs + "?x-no-tx-wrap=yeppers")); });
  CHECK(std::string(bad.what()).find("x-no-tx-wrap") != std::string::npos);
  CHECK(std::string(bad.what()).find("invalid syntax") != std::string::npos);
  auto missing = capture_error([&] { drivers::open_sqlite(Url::parse("sqlite://" + (dir / "no/such/dir/x.db").string())); });
  CHECK(missing.code() == ErrorCode::kDatabase);
  CHECK(std::string(missing.what()).find("no/such/dir/x.db") != std::string::npos);
}

TEST_CASE("sqlite: go-sqlite3 connection parameters become pragmas") {
  TempDir dir;
  auto d = drivers::open_sqlite(Url::parse("sqlite://" + (dir / "p.db").string() + "?_journal_mode=WAL&_foreign_keys=1"));
  d->apply(up_step(1, "CREATE TABLE p (id int primary key); CREATE TABLE c (p int references p (id));"), {});
  auto e = capture_error([&] { d->apply(up_step(2, "INSERT INTO c VALUES (42);"), DbState{1, false}); });
  CHECK(e.code() == ErrorCode::kMigrationFailed);  // the foreign key is enforced
  SQLite::Database db((dir / "p.db").string());
  CHECK(db.execAndGet("PRAGMA journal_mode").getString() == "wal");
}

// PRAGMA journal_mode = WAL on a rollback-journal file needs an exclusive lock while it holds a
// shared one, and SQLite answers BUSY at once instead of running the busy handler: a second
// process opening the database while another wrote failed at once with "database is locked"
// (one 16-process race in about 25, concurrency_test.cpp). The open waits, as long as the busy
// timeout allows, and then names the PRAGMA.
TEST_CASE("sqlite: _journal_mode=wal waits for a writer instead of failing the open") {
  TempDir dir;
  auto file = (dir / "wal.db").string();
  drivers::open_sqlite(Url::parse("sqlite://" + file))->set_state({1, false});
  SQLite::Database other(file, SQLite::OPEN_READWRITE);
  other.exec("BEGIN IMMEDIATE");

  auto e = capture_error([&] {
    drivers::open_sqlite(Url::parse("sqlite://" + file + "?_journal_mode=wal&_busy_timeout=100"));
  });
  CHECK(e.code() == ErrorCode::kLockTimeout);
  CHECK(std::string(e.what()).find("wal.db") != std::string::npos);
  CHECK(std::string(e.what()).find("PRAGMA journal_mode = wal") != std::string::npos);
  CHECK(other.execAndGet("PRAGMA journal_mode").getString() == "delete");

  std::thread writer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    other.exec("COMMIT");
  });
  std::unique_ptr<Driver> d;
  CHECK_NOTHROW(d = drivers::open_sqlite(Url::parse("sqlite://" + file + "?_journal_mode=wal")));
  writer.join();
  REQUIRE(d);
  CHECK(d->state() == DbState{1, false});
  SQLite::Database db(file);
  CHECK(db.execAndGet("PRAGMA journal_mode").getString() == "wal");
}

// A database another connection holds locked past the busy timeout is an error naming the
// lock, never a database "with nothing to copy": that read skipped the backup the user asked for
// and let the run go on. A lock released within the timeout is waited for.
TEST_CASE("sqlite: a backup waits for a writer, up to the busy timeout") {
  TempDir dir;
  auto file = (dir / "held.db").string();
  auto d = drivers::open_sqlite(Url::parse("sqlite://" + file + "?_busy_timeout=100"));
  d->set_state({1, false});
  SQLite::Database other(file, SQLite::OPEN_READWRITE);
  other.exec("BEGIN EXCLUSIVE");

  auto e = capture_error([&] { d->backup(DbState{1, false}); });
  CHECK(e.code() == ErrorCode::kDatabase);
  CHECK(std::string(e.what()).find("cannot back up SQLite database " + file) == 0);
  CHECK(std::string(e.what()).find("database is locked") != std::string::npos);
  CHECK(std::string(e.what()).find("no migration was run") != std::string::npos);
  for (const auto& entry : std::filesystem::directory_iterator(dir.path())) {
    CHECK(entry.path().filename().string().find(".backup-") == std::string::npos);
  }

  std::thread writer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    other.exec("COMMIT");
  });
  std::optional<std::string> copy;  // with the default busy timeout, 15 s
  CHECK_NOTHROW(
      copy = drivers::open_sqlite(Url::parse("sqlite://" + file))->backup(DbState{1, false}));
  writer.join();
  REQUIRE(copy);
  SQLite::Database db(*copy);
  CHECK(db.execAndGet("SELECT version FROM schema_migrations").getInt() == 1);
}

TEST_CASE("sqlite: golang-migrate's own table shape (version uint64, dirty bool) continues") {
  TempDir dir;
  auto file = (dir / "gm.db").string();
  {
    SQLite::Database db(file, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    db.exec("CREATE TABLE IF NOT EXISTS schema_migrations (version uint64,dirty bool);"
            "CREATE UNIQUE INDEX IF NOT EXISTS version_unique ON schema_migrations (version);"
            "INSERT INTO schema_migrations (version, dirty) VALUES (20170412214116, 0);");
  }
  auto d = drivers::open_sqlite(Url::parse("sqlite3://" + file));
  CHECK(d->state() == DbState{20170412214116ULL, false});
  CHECK(d->apply(up_step(20180101000000ULL, "CREATE TABLE later (x int);"), DbState{20170412214116ULL, false}));
  SQLite::Database db(file);
  CHECK(db.execAndGet("SELECT version FROM schema_migrations").getInt64() == 20180101000000LL);
  CHECK(db.execAndGet("SELECT dirty FROM schema_migrations").getInt() == 0);
}

TEST_CASE("sqlite: files with their own BEGIN/COMMIT") {
  TempDir dir;
  auto d = drivers::open_sqlite(Url::parse("sqlite://" + (dir / "tx.db").string()));
  SQLite::Database db((dir / "tx.db").string(), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);

  // Transaction control in the middle of a file: it runs as written, outside the wrapper.
  CHECK(d->apply(up_step(1, "CREATE TABLE a (x int);\nBEGIN;\nINSERT INTO a VALUES (1);\nCOMMIT;\n"), {}));
  CHECK(d->state() == DbState{1, false});
  CHECK(db.execAndGet("SELECT COUNT(*) FROM a").getInt() == 1);

  // One plain BEGIN ... COMMIT around the whole file: dbstep's transaction stands in for it, so a
  // failure leaves nothing and the version clean, as for any other file.
  auto e = capture_error([&] {
    d->apply(up_step(2, "-- wrapped\nBEGIN TRANSACTION;\nINSERT INTO a VALUES (2);\nINSERT INTO nope VALUES (1);\nCOMMIT;\n"),
             DbState{1, false});
  });
  CHECK(e.line == 4);
  CHECK(d->state() == DbState{1, false});
  CHECK(db.execAndGet("SELECT COUNT(*) FROM a").getInt() == 1);
  CHECK(d->apply(up_step(2, "BEGIN;\nINSERT INTO a VALUES (2);\nEND;\n-- done\n"), DbState{1, false}));
  CHECK(db.execAndGet("SELECT COUNT(*) FROM a").getInt() == 2);

  // Savepoints work inside the wrapper.
  CHECK(d->apply(up_step(3, "SAVEPOINT s; INSERT INTO a VALUES (3); ROLLBACK TO s; RELEASE s;"), DbState{2, false}));
  CHECK(db.execAndGet("SELECT COUNT(*) FROM a").getInt() == 2);

  // Failing inside its own (not wrapper) transaction: rolled back, the database is dirty.
  auto dirty = capture_error([&] {
    d->apply(up_step(4, "INSERT INTO a VALUES (4);\nBEGIN;\nINSERT INTO a VALUES (5);\nINSERT INTO nope VALUES (1);\nCOMMIT;\n"),
             DbState{3, false});
  });
  CHECK(dirty.line == 4);
  CHECK(d->state() == DbState{4, true});
  CHECK(db.execAndGet("SELECT COUNT(*) FROM a").getInt() == 3);

  // A BEGIN without COMMIT is not committed for the file; nothing of it remains, so the
  // version stays where it was, clean (issue 9, defect 8).
  d->set_state({4, false});
  auto open_tx = capture_error([&] { d->apply(up_step(5, "BEGIN;\nINSERT INTO a VALUES (6);\n"), DbState{4, false}); });
  CHECK(std::string(open_tx.what()).find("never commits") != std::string::npos);
  CHECK(open_tx.line == 1);
  CHECK(db.execAndGet("SELECT COUNT(*) FROM a WHERE x = 6").getInt() == 0);
  CHECK(d->state() == DbState{4, false});

  // The same outside a transaction (dirty protocol): everything the file did was inside its own
  // transaction, which was rolled back, so the dirty mark is taken back.
  for (const char* sql : {"-- dbstep:no-transaction\nBEGIN;\nINSERT INTO a VALUES (7);\n",
                          "-- dbstep:no-transaction\nBEGIN;\nINSERT INTO a VALUES (7);\nINSERT INTO nope VALUES (1);\n"}) {
    CAPTURE(sql);
    auto e = capture_error([&] { d->apply(up_step(5, sql), DbState{4, false}); });
    CHECK(e.code() == ErrorCode::kMigrationFailed);
    CHECK(db.execAndGet("SELECT COUNT(*) FROM a WHERE x = 7").getInt() == 0);
    CHECK(d->state() == DbState{4, false});
  }
  // But once a statement of the file was committed, the database stays dirty.
  auto committed = capture_error([&] {
    d->apply(up_step(5, "-- dbstep:no-transaction\nINSERT INTO a VALUES (8);\nBEGIN;\nINSERT INTO a VALUES (9);\n"),
             DbState{4, false});
  });
  CHECK(committed.code() == ErrorCode::kMigrationFailed);
  CHECK(db.execAndGet("SELECT COUNT(*) FROM a WHERE x = 8").getInt() == 1);
  CHECK(db.execAndGet("SELECT COUNT(*) FROM a WHERE x = 9").getInt() == 0);
  CHECK(d->state() == DbState{5, true});
}

TEST_CASE("sqlite: the table-rebuild recipe with PRAGMA foreign_keys keeps child rows") {
  TempDir dir;
  auto file = (dir / "fk.db").string();
  auto d = drivers::open_sqlite(Url::parse("sqlite://" + file + "?_foreign_keys=true"));
  CHECK(d->apply(up_step(1,
                         "CREATE TABLE parent (id INTEGER PRIMARY KEY, name TEXT);\n"
                         "CREATE TABLE child (pid INTEGER REFERENCES parent (id) ON DELETE CASCADE);\n"
                         "INSERT INTO parent VALUES (1, 'a'); INSERT INTO child VALUES (1);\n"),
                 {}));
  // SQLite's documented way to change a table: keys off, rebuild, keys on.
  const std::string rebuild =
      "PRAGMA foreign_keys = OFF;\n"
      "CREATE TABLE parent_new (id INTEGER PRIMARY KEY, name TEXT NOT NULL DEFAULT '');\n"
      "INSERT INTO parent_new SELECT id, name FROM parent;\n"
      "DROP TABLE parent;\n"
      "ALTER TABLE parent_new RENAME TO parent;\n"
      "PRAGMA foreign_keys = ON;\n";
  CHECK(d->apply(up_step(2, rebuild), DbState{1, false}));
  SQLite::Database db(file);
  CHECK(db.execAndGet("SELECT COUNT(*) FROM child").getInt() == 1);
  CHECK(d->state() == DbState{2, false});
  // Keys are back on for the connection: a dangling child row fails the next migration.
  auto e = capture_error([&] { d->apply(up_step(3, "INSERT INTO child VALUES (42);"), DbState{2, false}); });
  CHECK(e.code() == ErrorCode::kMigrationFailed);
  // A rebuild that leaves a broken reference fails, and nothing of it stays.
  auto broken = capture_error([&] {
    d->apply(up_step(3, "PRAGMA foreign_keys = OFF;\nDELETE FROM parent;\nPRAGMA foreign_keys = ON;\n"),
             DbState{2, false});
  });
  CHECK(std::string(broken.what()).find("break them") != std::string::npos);
  CHECK(db.execAndGet("SELECT COUNT(*) FROM parent").getInt() == 1);
  CHECK(d->state() == DbState{2, false});
}

TEST_CASE("sqlite: VACUUM and x-no-tx-wrap run outside a transaction") {
  TempDir dir;
  auto d = drivers::open_sqlite(Url::parse("sqlite://" + (dir / "v.db").string() + "?x-no-tx-wrap=true"));
  CHECK(d->apply(up_step(1, "CREATE TABLE a (x int);"), {}));
  CHECK(d->apply(up_step(2, "VACUUM;"), DbState{1, false}));
  auto wrapped = drivers::open_sqlite(Url::parse("sqlite://" + (dir / "v.db").string()));
  CHECK(wrapped->apply(up_step(3, "INSERT INTO a VALUES (1); VACUUM;"), DbState{2, false}));
  CHECK(wrapped->state() == DbState{3, false});
}

TEST_CASE("sqlite: triggers with BEGIN ... END bodies stay whole") {
  TempDir dir;
  auto d = drivers::open_sqlite(Url::parse("sqlite://" + (dir / "t.db").string()));
  CHECK(d->apply(up_step(1,
                         "CREATE TABLE a (x int);\nCREATE TABLE log (x int);\n"
                         "CREATE TRIGGER a_log AFTER INSERT ON a BEGIN\n"
                         "  INSERT INTO log VALUES (new.x);\n  INSERT INTO log VALUES (new.x + 1);\nEND;\n"
                         "INSERT INTO a VALUES (1);\n"
                         "INSERT INTO a VALUES (';'); -- a semicolon in a string; and in a comment\n"),
                 {}));
  SQLite::Database db((dir / "t.db").string());
  CHECK(db.execAndGet("SELECT COUNT(*) FROM log").getInt() == 4);
  CHECK(d->state() == DbState{1, false});
}

TEST_CASE("sqlite: drop skips SQLite's own tables (AUTOINCREMENT's sqlite_sequence)") {
  TempDir dir;
  auto d = drivers::open_sqlite(Url::parse("sqlite://" + (dir / "d.db").string()));
  CHECK(d->apply(up_step(1, "CREATE TABLE a (id INTEGER PRIMARY KEY AUTOINCREMENT, x int); INSERT INTO a (x) VALUES (1);"), {}));
  d->lock(std::chrono::seconds(1));
  d->drop();
  d->unlock();
  SQLite::Database db((dir / "d.db").string());
  CHECK(db.execAndGet("SELECT COUNT(*) FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'").getInt() == 0);
}

TEST_CASE("sqlite: a drop that cannot get the write lock leaves foreign keys on") {
  TempDir dir;
  auto file = (dir / "fkdrop.db").string();
  auto d = drivers::open_sqlite(Url::parse("sqlite://" + file + "?_foreign_keys=1&_busy_timeout=50"));
  CHECK(d->apply(up_step(1,
                         "CREATE TABLE parent (id INTEGER PRIMARY KEY);\n"
                         "CREATE TABLE child (pid INTEGER REFERENCES parent (id));\n"),
                 {}));
  {
    SQLite::Database other(file, SQLite::OPEN_READWRITE);
    other.exec("BEGIN IMMEDIATE");
    auto e = capture_error([&] { d->drop(); });
    CHECK(e.code() == ErrorCode::kLockTimeout);
    other.exec("ROLLBACK");
  }
  // Nothing was dropped, and the connection still enforces the references.
  auto e = capture_error([&] { d->apply(up_step(2, "INSERT INTO child VALUES (42);"), DbState{1, false}); });
  CHECK(e.code() == ErrorCode::kMigrationFailed);
  CHECK(d->state() == DbState{1, false});
}

TEST_CASE("sqlite: a write lock held elsewhere past the lock timeout is a lock timeout") {
  TempDir dir;
  auto file = (dir / "busy.db").string();
  auto d = drivers::open_sqlite(Url::parse("sqlite://" + file));
  d->set_state({1, false});
  SQLite::Database other(file, SQLite::OPEN_READWRITE);
  other.exec("BEGIN IMMEDIATE");
  d->lock(std::chrono::milliseconds(100));
  auto e = capture_error([&] { d->apply(up_step(2, "CREATE TABLE t (x int)"), DbState{1, false}); });
  CHECK(e.code() == ErrorCode::kLockTimeout);
  CHECK(std::string(e.what()).find("busy.db") != std::string::npos);
  other.exec("ROLLBACK");
  CHECK(d->apply(up_step(2, "CREATE TABLE t (x int)"), DbState{1, false}));
  d->unlock();
}

TEST_CASE("sqlite: the run lock excludes a second driver until unlock, and names its holder") {
  TempDir dir;
  auto url = Url::parse("sqlite://" + (dir / "l.db").string());
  auto a = drivers::open_sqlite(url);
  auto b = drivers::open_sqlite(url);
  a->lock(std::chrono::seconds(1));
  auto e = capture_error([&] { b->lock(std::chrono::milliseconds(100)); });
  CHECK(e.code() == ErrorCode::kLockTimeout);
  CHECK(std::string(e.what()).find("process " + std::to_string(::getpid())) != std::string::npos);
  a->unlock();
  b->lock(std::chrono::milliseconds(100));
  b->unlock();
}

TEST_CASE("sqlite: a version table another connection dropped reads as none and is made again") {
  TempDir dir;
  auto file = (dir / "o.db").string();
  auto d = drivers::open_sqlite(Url::parse("sqlite://" + file));
  CHECK(d->apply(up_step(1, "CREATE TABLE a (x int);"), {}));
  CHECK(d->state() == DbState{1, false});
  SQLite::Database other(file, SQLite::OPEN_READWRITE);
  other.exec("DROP TABLE schema_migrations");
  CHECK(d->state() == DbState{});
  CHECK(d->apply(up_step(1, "CREATE TABLE a1 (x int);"), {}));
  CHECK(d->state() == DbState{1, false});
  other.exec("DROP TABLE schema_migrations");
  d->set_state({4, false});
  CHECK(d->state() == DbState{4, false});
  CHECK(other.execAndGet("SELECT version FROM schema_migrations").getInt64() == 4);
}

TEST_CASE("sqlite: the version table dropped or rebuilt by migrations and by drop()") {
  // The driver keeps its version-table statements prepared; each case changes the table under
  // them.
  TempDir dir;
  auto file = (dir / "r.db").string();
  auto d = drivers::open_sqlite(Url::parse("sqlite://" + file));
  CHECK(d->apply(up_step(1, "CREATE TABLE a (x int);"), {}));
  CHECK(d->state() == DbState{1, false});
  SQLite::Database other(file, SQLite::OPEN_READWRITE);

  // A migration rebuilds it with its columns the other way round.
  CHECK(d->apply(up_step(2, "DROP TABLE schema_migrations;\n"
                            "CREATE TABLE schema_migrations (dirty bool, version uint64);"),
                 DbState{1, false}));
  CHECK(d->state() == DbState{2, false});
  CHECK(other.execAndGet("SELECT version FROM schema_migrations WHERE NOT dirty").getInt64() == 2);

  // A migration drops it for good: the version cannot be written, nothing of it stays.
  auto e = capture_error([&] {
    d->apply(up_step(3, "CREATE TABLE c (x int);\nDROP TABLE schema_migrations;"), DbState{2, false});
  });
  CHECK(e.code() == ErrorCode::kDatabase);
  CHECK(std::string(e.what()) == "cannot update the version table schema_migrations in SQLite "
                                 "database " + file + ": no such table: schema_migrations");
  CHECK(d->state() == DbState{2, false});
  CHECK(d->apply(up_step(3, "CREATE TABLE c (x int);"), DbState{2, false}));
  d->set_state({3, true});
  CHECK(d->state() == DbState{3, true});
  d->set_state({std::nullopt, false});
  CHECK(d->state() == DbState{});
  d->set_state({3, false});

  // One that runs outside a transaction and drops it: the database stays dirty, then reads as
  // none (the table is gone), and the next migration makes the table again.
  auto gone = capture_error([&] {
    d->apply(up_step(4, "-- dbstep:no-transaction\nDROP TABLE schema_migrations;"), DbState{3, false});
  });
  CHECK(std::string(gone.what()).find("no such table: schema_migrations") != std::string::npos);
  CHECK(d->state() == DbState{});
  CHECK(d->apply(up_step(1, "CREATE TABLE a4 (x int);"), {}));
  CHECK(d->state() == DbState{1, false});

  // drop() removes it (and VACUUMs) with the statements prepared; the driver works on.
  d->lock(std::chrono::seconds(1));
  d->drop();
  d->unlock();
  CHECK(d->state() == DbState{});
  CHECK(d->apply(up_step(1, "CREATE TABLE a (x int);"), {}));
  CHECK(d->state() == DbState{1, false});
  CHECK(other.execAndGet("SELECT COUNT(*) FROM schema_migrations").getInt() == 1);
}
