#include "testing/postgres_test_database.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <iostream>
#include <map>
#include <mutex>
#include <pqxx/except>
#include <pqxx/nontransaction>
#include <pqxx/result>
#include <random>
#include <thread>

#include "core/checksum.hpp"
#include "core/error.hpp"
#include "core/url.hpp"
#include "drivers/postgres/postgres_driver.hpp"
#include "testing/move.hpp"

namespace dbstep::testing {

namespace {

using Clock = std::chrono::steady_clock;

// The first key of dbstep::testing's advisory locks ("dbst"); the two-int form never meets
// golang-migrate's one-bigint lock.
constexpr std::int32_t kLockKey = 0x64627374;

// `url` naming database `name` instead of its own: libpq lets a dbname parameter override the URI's
// path, and a later keyword an earlier one in a key=value string.
std::string with_dbname(std::string_view url, std::string_view name) {
  std::string text(url);
  const auto query = text.find('?');
  if (text.find("://") != std::string::npos) {
    return text + (query == std::string::npos ? "?" : "&") + "dbname=" + std::string(name);
  }
  const std::string keyword = " dbname=" + std::string(name);
  return query == std::string::npos ? text + keyword : text.insert(query, keyword);
}

// What libpq (and so pqxx) reads: the URL without dbstep's x- parameters, a key=value string
// without its "postgres:" prefix.
std::string conninfo(std::string_view url) {
  Url parsed = Url::parse(url);
  std::string text = parsed.without_custom_params();
  if (text.find("://") == std::string::npos) text.erase(0, parsed.scheme().size() + 1);
  return text;
}

// The SQLSTATE of a libpqxx error. libpqxx 6.4 leaves sqlstate() empty on the subclasses it
// throws for some codes (insufficient_privilege ...): those are named by their class.
std::string sql_state(const std::exception& e) {
  if (dynamic_cast<const pqxx::insufficient_privilege*>(&e)) return "42501";
  const auto* sql = dynamic_cast<const pqxx::sql_error*>(&e);
  return sql ? sql->sqlstate() : std::string();
}

Error database_error(const std::string& message, const std::exception& e) {
  const std::string state = sql_state(e);
  std::string cause = e.what();  // libpq's text ends in a newline
  while (!cause.empty() && std::isspace(static_cast<unsigned char>(cause.back()))) cause.pop_back();
  Error error(ErrorCode::kDatabase,
              redact_secrets(state == "42501"
                                 ? fmt::format("{}: the role may not create databases; grant it "
                                               "CREATEDB (ALTER ROLE name CREATEDB) or name a "
                                               "server URL whose role has it ({})",
                                               message, cause)
                                 : fmt::format("{}: {}", message, cause)));
  error.sqlstate = state;
  return error;
}

std::unique_ptr<pqxx::connection> connect(std::string_view url, std::string_view what) {
  try {
    return std::make_unique<pqxx::connection>(conninfo(url));
  } catch (const std::exception& e) {
    throw database_error(fmt::format("cannot connect to {} ({})", what, Url::parse(url).redacted()),
                         e);
  }
}

MigratorOptions migrator_options(const Options& options) {
  MigratorOptions m;
  m.lock_timeout = options.lock_timeout;
  m.record_history = options.record_history;
  return m;
}

// <pid>_<n>_<random>: unique among the processes of one machine, and across machines but for
// the odds of the random part.
std::string unique_suffix() {
  static std::atomic<unsigned> counter{0};
  static const unsigned salt = std::random_device{}();
  return fmt::format("{}_{}_{:04x}", ::getpid(), counter++, salt & 0xffff);
}

std::string new_database_name() { return "dbstep_test_" + unique_suffix(); }

std::string template_name(const MigrationSet& set, Version version) {
  return fmt::format("dbstep_tpl_{}_v{}", set.checksum().substr(0, 12), version);
}

// Ready copies of template `tpl` are named dbstep_pool_<checksum12>_v<version>_<unique>.
std::string pool_prefix(const std::string& tpl) {
  return "dbstep_pool_" + tpl.substr(std::string("dbstep_tpl_").size()) + "_";
}

// A LIKE pattern matching exactly the names that start with `prefix` ('_' is a wildcard in LIKE).
std::string like_prefix(const std::string& prefix) {
  std::string pattern;
  for (char c : prefix) {
    if (c == '_' || c == '%' || c == '\\') pattern += '\\';
    pattern += c;
  }
  return pattern + "%";
}

// 16 hex digits naming the set's origin in a template's comment, and its advisory lock key.
std::string origin_key(const MigrationSet& set) {
  return migration_checksum(set.origin()).substr(0, 16);
}

void run(pqxx::connection& conn, const std::string& sql) {
  pqxx::nontransaction tx(conn);
  tx.exec0(sql);
}

// The session advisory lock that lets one process build a template while the others wait, held
// while it lives, keyed by `name` (the template's: two folders with the same files share one
// template, so they must share its lock). Polls pg_try_advisory_lock so that the wait is bounded.
class TemplateLock {
 public:
  TemplateLock(pqxx::connection& conn, const std::string& name, const Options& options)
      : conn_(conn),
        key_(static_cast<std::int32_t>(
            std::stoul(migration_checksum(name).substr(0, 8), nullptr, 16))) {
    const auto deadline = Clock::now() + options.lock_timeout;
    auto pause = std::chrono::milliseconds(2);
    for (;;) {
      pqxx::nontransaction tx(conn_);
      if (tx.exec_params1("SELECT pg_try_advisory_lock($1, $2)", kLockKey, key_)[0].as<bool>()) {
        return;
      }
      if (Clock::now() >= deadline) {
        throw Error(ErrorCode::kLockTimeout,
                    fmt::format("timed out after {} ms waiting for another process to build {} "
                                "(it holds the advisory lock ({}, {})); raise "
                                "Options::lock_timeout if it is only slow",
                                options.lock_timeout.count(), name, kLockKey, key_));
      }
      std::this_thread::sleep_for(pause);
      pause = std::min(pause * 2, std::chrono::milliseconds(25));
    }
  }
  ~TemplateLock() {
    try {
      pqxx::nontransaction tx(conn_);
      tx.exec_params("SELECT pg_advisory_unlock($1, $2)", kLockKey, key_);
    } catch (...) {
      // The session ends with the handle's admin connection, and the lock with it.
    }
  }
  TemplateLock(const TemplateLock&) = delete;
  TemplateLock& operator=(const TemplateLock&) = delete;

 private:
  pqxx::connection& conn_;
  std::int32_t key_;
};

// Whether `name` exists, and whether it is a finished template.
struct DatabaseRow {
  bool exists = false;
  bool is_template = false;
};
DatabaseRow find_database(pqxx::connection& admin, const std::string& name) {
  pqxx::nontransaction tx(admin);
  auto r = tx.exec_params("SELECT datistemplate FROM pg_database WHERE datname = $1", name);
  if (r.empty()) return {};
  return {true, r[0][0].as<bool>()};
}

// Drops templates of the same origin whose set had another checksum (every template of the
// origin when `all`). One that a concurrent CREATE
// DATABASE is copying (or that cannot go for another reason) stays for the next build.
void drop_stale_templates(pqxx::connection& admin, const MigrationSet& set, bool all = false) {
  pqxx::result stale;
  {
    pqxx::nontransaction tx(admin);
    stale = tx.exec_params(
        "SELECT datname FROM pg_database WHERE datname LIKE 'dbstep\\_tpl\\_%' "
        "AND datname NOT LIKE $1 AND shobj_description(oid, 'pg_database') "
        "LIKE $2",
        all ? std::string("-") : fmt::format("dbstep\\_tpl\\_{}\\_%", set.checksum().substr(0, 12)),
        fmt::format("%; origin {};%", origin_key(set)));
  }
  for (const auto& row : stale) {
    const std::string tpl = row[0].as<std::string>();
    pqxx::result copies;
    {
      pqxx::nontransaction tx(admin);
      copies = tx.exec_params("SELECT datname FROM pg_database WHERE datname LIKE $1",
                              like_prefix(pool_prefix(tpl)));
    }
    try {
      for (const auto& copy : copies) {
        run(admin,
            "DROP DATABASE " + admin.quote_name(copy[0].as<std::string>()) + " WITH (FORCE)");
      }
      run(admin, "ALTER DATABASE " + admin.quote_name(tpl) + " IS_TEMPLATE false");
      run(admin, "DROP DATABASE " + admin.quote_name(tpl));
    } catch (const pqxx::sql_error&) {
    }
  }
}

// Tops the pool of ready copies of `tpl` up to `size`, creating at most `at_most`. Best effort: a
// copy that cannot be made now is made by a later call.
void refill_pool(pqxx::connection& admin, std::string_view server_url, const std::string& tpl,
                 int size, int at_most) {
  try {
    int have = 0;
    {
      pqxx::nontransaction tx(admin);
      have = tx.exec_params1("SELECT count(*) FROM pg_database WHERE datname LIKE $1",
                             like_prefix(pool_prefix(tpl)))[0]
                 .as<int>();
    }
    for (int i = have; i < size && i - have < at_most; ++i) {
      const std::string copy = pool_prefix(tpl) + unique_suffix();
      run(admin,
          "CREATE DATABASE " + admin.quote_name(copy) + " TEMPLATE " + admin.quote_name(tpl));
      // A new database's first session builds its relation cache file (pg_internal.init), which
      // takes longer than the connection itself: done here, the test's connection finds it.
      pqxx::connection warm(conninfo(with_dbname(server_url, copy)));
    }
  } catch (const std::exception&) {
  }
}

// One maintenance connection per server URL for the whole process, shared by every handle (under
// its mutex), so that after the first a test database is one connection away (the test's own), not
// two. A connection that broke is opened again on next use.
class AdminConnection {
 public:
  static std::shared_ptr<AdminConnection> of(std::string_view server_url) {
    static std::mutex cache_mutex;
    static std::map<std::string, std::shared_ptr<AdminConnection>, std::less<>> cache;
    std::lock_guard<std::mutex> lock(cache_mutex);
    auto& slot = cache[std::string(server_url)];
    if (!slot) slot = std::make_shared<AdminConnection>();
    return slot;
  }

  // Holds the connection for one use.
  class Session {
   public:
    Session(AdminConnection& admin, std::string_view server_url) : lock_(admin.mutex_) {
      if (admin.conn_ && !admin.conn_->is_open()) admin.conn_.reset();
      if (!admin.conn_) admin.conn_ = connect(server_url, "the PostgreSQL server");
      conn_ = admin.conn_.get();
    }
    pqxx::connection& operator*() { return *conn_; }
    pqxx::connection* operator->() { return conn_; }

   private:
    std::lock_guard<std::mutex> lock_;
    pqxx::connection* conn_ = nullptr;
  };

 private:
  std::mutex mutex_;
  std::unique_ptr<pqxx::connection> conn_;
};

// The name of the template database for (set, version), built first (on `admin`'s session) when it
// is missing.
std::string ensure_template(pqxx::connection& admin, const MigrationSet& set,
                            std::string_view server_url, Version version, const Options& options);

}  // namespace

struct PostgresTestDatabase::Impl {
  MigrationSet set;
  Options options;
  std::string server_url;
  std::string name;
  std::string url;
  std::shared_ptr<AdminConnection> admin;
  std::unique_ptr<pqxx::connection> db;
  std::unique_ptr<Migrator> migrator;
  bool created = false;
  std::string template_db;  // the template it was copied from (from_template()), for the refill

  Impl(const MigrationSet& s, const Options& o, std::string_view server)
      : set(s),
        options(o),
        server_url(server),
        name(new_database_name()),
        url(with_dbname(server, name)) {}

  ~Impl() {
    migrator.reset();
    db.reset();
    if (!created) return;
    if (options.keep) {
      std::cerr << "dbstep::testing: kept the test database " << name << "\n";
      return;
    }
    try {
      AdminConnection::Session admin_session(*admin, server_url);
      pqxx::connection& conn = *admin_session;
      try {
        run(conn, "DROP DATABASE IF EXISTS " + conn.quote_name(name) + " WITH (FORCE)");
      } catch (const std::exception& e) {
        std::cerr << "dbstep::testing: cannot drop the test database " << name << ": "
                  << redact_secrets(e.what()) << "\n";
      }
      // The next from_template() finds a ready copy instead of waiting for CREATE DATABASE.
      if (!template_db.empty())
        refill_pool(conn, server_url, template_db, options.postgres_pool, 1);
    } catch (const std::exception& e) {
      std::cerr << "dbstep::testing: cannot drop the test database " << name << ": "
                << redact_secrets(e.what()) << "\n";
    }
  }

  // Takes a ready copy of `tpl` from its pool by renaming it to this database's name. False when
  // the pool is empty (or every copy was taken by another process first).
  bool claim(pqxx::connection& admin, const std::string& tpl) {
    if (options.postgres_pool <= 0) return false;
    // One round trip: rename the oldest ready copy that no other process took first (a copy
    // another process renamed or is dropping fails, and the loop goes on); P0002 when none.
    const std::string sql = fmt::format(
        "DO $dbstep$ DECLARE d text; BEGIN "
        "FOR d IN SELECT datname FROM pg_database WHERE datname LIKE {} ORDER BY oid LIMIT 8 LOOP "
        "BEGIN EXECUTE format('ALTER DATABASE %I RENAME TO %I', d, {}); RETURN; "
        "EXCEPTION WHEN OTHERS THEN NULL; END; END LOOP; "
        "RAISE EXCEPTION 'no ready copy' USING ERRCODE = 'P0002'; END $dbstep$",
        admin.quote(like_prefix(pool_prefix(tpl))), admin.quote(name));
    try {
      run(admin, sql);
    } catch (const pqxx::sql_error& e) {
      if (e.sqlstate() == "P0002") return false;
      throw database_error(fmt::format("cannot take a ready copy of the template {}", tpl), e);
    }
    created = true;
    template_db = tpl;
    return true;
  }

  void connect_admin() { admin = AdminConnection::of(server_url); }

  // CREATE DATABASE, tried again while the template is in use by another session (55006).
  void create(pqxx::connection& conn, const std::string& template_db) {
    pqxx::connection* admin = &conn;
    const std::string sql =
        "CREATE DATABASE " + admin->quote_name(name) +
        (template_db.empty() ? "" : " TEMPLATE " + admin->quote_name(template_db));
    const auto deadline = Clock::now() + options.lock_timeout;
    for (;;) {
      try {
        run(*admin, sql);
        created = true;
        return;
      } catch (const std::exception& e) {
        if (sql_state(e) != "55006" || Clock::now() >= deadline) {
          throw database_error(
              template_db.empty()
                  ? fmt::format("cannot create the test database {}", name)
                  : fmt::format("cannot create the test database {} from the template "
                                "{}{}",
                                name, template_db,
                                sql_state(e) == "55006"
                                    ? fmt::format(" (another session stayed connected "
                                                  "to it for "
                                                  "the whole lock timeout, {} ms)",
                                                  options.lock_timeout.count())
                                    : ""),
              e);
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
};

PostgresTestDatabase::PostgresTestDatabase(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
PostgresTestDatabase::PostgresTestDatabase(PostgresTestDatabase&&) noexcept = default;
PostgresTestDatabase& PostgresTestDatabase::operator=(PostgresTestDatabase&&) noexcept = default;
PostgresTestDatabase::~PostgresTestDatabase() = default;

PostgresTestDatabase PostgresTestDatabase::empty(const MigrationSet& set,
                                                 std::string_view server_url,
                                                 const Options& options) {
  auto impl = std::make_unique<Impl>(set, options, server_url);
  impl->connect_admin();
  AdminConnection::Session admin(*impl->admin, server_url);
  impl->create(*admin, "");
  return PostgresTestDatabase(std::move(impl));
}

PostgresTestDatabase PostgresTestDatabase::from_template(const MigrationSet& set,
                                                         std::string_view server_url,
                                                         const Options& options) {
  return from_template(set, server_url, set.latest(), options);
}

PostgresTestDatabase PostgresTestDatabase::from_template(const MigrationSet& set,
                                                         std::string_view server_url,
                                                         Version version, const Options& options) {
  auto impl = std::make_unique<Impl>(set, options, server_url);
  impl->connect_admin();
  AdminConnection::Session admin(*impl->admin, server_url);
  // A template dropped between the two steps (a build for a changed set of the same origin removed
  // it) is built again.
  // A ready copy is there only once the template is built: the fast path asks nothing else.
  if (set.contains(version) && impl->claim(*admin, template_name(set, version))) {
    return PostgresTestDatabase(std::move(impl));
  }
  for (int attempt = 1;; ++attempt) {
    std::string tpl = ensure_template(*admin, set, server_url, version, options);
    if (impl->claim(*admin, tpl)) break;
    try {
      impl->create(*admin, tpl);
      impl->template_db = tpl;
      break;
    } catch (const Error& e) {
      if (e.sqlstate != "3D000" || attempt == 3) throw;
    }
  }
  return PostgresTestDatabase(std::move(impl));
}

std::string PostgresTestDatabase::template_database(const MigrationSet& set,
                                                    std::string_view server_url, Version version,
                                                    const Options& options) {
  auto shared = AdminConnection::of(server_url);
  AdminConnection::Session admin(*shared, server_url);
  return ensure_template(*admin, set, server_url, version, options);
}

namespace {

std::string ensure_template(pqxx::connection& admin_connection, const MigrationSet& set,
                            std::string_view server_url, Version version, const Options& options) {
  pqxx::connection* admin = &admin_connection;
  if (!set.contains(version)) {
    Error error(ErrorCode::kMissingVersion,
                fmt::format("no template at version {}: {} has no migration {} (latest: {})",
                            version, set.origin(), version, set.latest()));
    error.version = version;
    throw error;
  }
  const std::string tpl = template_name(set, version);
  try {
    if (find_database(*admin, tpl).is_template) return tpl;

    TemplateLock lock(*admin, tpl, options);
    DatabaseRow row = find_database(*admin, tpl);
    if (row.is_template) return tpl;  // built while this process waited
    const std::string quoted = admin->quote_name(tpl);
    if (row.exists) run(*admin,
                        "DROP DATABASE " + quoted + " WITH (FORCE)");  // a dead build's
    run(*admin, "CREATE DATABASE " + quoted);
    try {
      Migrator migrator(set.open(),
                        drivers::open_postgres(Url::parse(with_dbname(server_url, tpl))),
                        migrator_options(options));
      move_to(migrator, version, "the template database " + tpl);
    } catch (...) {
      try {
        run(*admin, "DROP DATABASE IF EXISTS " + quoted + " WITH (FORCE)");
      } catch (...) {
      }
      throw;
    }
    // Closed to connections, so that no session can hold it up (55006) or change it.
    run(*admin, "ALTER DATABASE " + quoted + " WITH ALLOW_CONNECTIONS false IS_TEMPLATE true");
    run(*admin, "COMMENT ON DATABASE " + quoted + " IS " +
                    admin->quote(fmt::format("dbstep testing template; origin {}; set {}; {}",
                                             origin_key(set), set.checksum(), set.origin())));
    drop_stale_templates(*admin, set);
    refill_pool(*admin, server_url, tpl, options.postgres_pool, options.postgres_pool);
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw database_error(
        fmt::format("cannot build the template database {} of {}", tpl, set.origin()), e);
  }
  return tpl;
}

}  // namespace

void PostgresTestDatabase::run_path(const MigrationSet& set, std::string_view server_url,
                                    const std::vector<PathStep<pqxx::connection>>& steps,
                                    const Options& options) {
  run_migration_path(steps, [&](OptVersion from) {
    return from ? from_template(set, server_url, *from, options) : empty(set, server_url, options);
  });
}

void PostgresTestDatabase::drop_templates(const MigrationSet& set, std::string_view server_url,
                                          const Options& options) {
  auto shared = AdminConnection::of(server_url);
  AdminConnection::Session admin(*shared, server_url);
  try {
    TemplateLock lock(*admin, "the templates of " + set.origin(), options);
    drop_stale_templates(*admin, set, true);
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw database_error("cannot drop the template databases of " + set.origin(), e);
  }
}

pqxx::connection& PostgresTestDatabase::db() {
  if (!impl_->db) impl_->db = connect(impl_->url, "the test database " + impl_->name);
  return *impl_->db;
}

Migrator& PostgresTestDatabase::migrator() {
  if (!impl_->migrator) {
    impl_->migrator = std::make_unique<Migrator>(impl_->set.open(),
                                                 drivers::open_postgres(Url::parse(impl_->url)),
                                                 migrator_options(impl_->options));
  }
  return *impl_->migrator;
}

void PostgresTestDatabase::migrate_to(Version version) {
  move_to(migrator(), version, "the test database " + impl_->name);
}

void PostgresTestDatabase::migrate_up() { migrate_to(impl_->set.latest()); }

void PostgresTestDatabase::migrate_down_all() {
  move_to(migrator(), std::nullopt, "the test database " + impl_->name);
}

std::string PostgresTestDatabase::schema() { return migrator().driver().schema_snapshot(); }

OptVersion PostgresTestDatabase::version() { return migrator().state().version; }

const std::string& PostgresTestDatabase::name() const { return impl_->name; }

const std::string& PostgresTestDatabase::url() const { return impl_->url; }

}  // namespace dbstep::testing
