// The bad-input corpus: every folder under tests/data/bad_input/ is one case (its files, the
// arguments, the exit code and fragments of the message it must give; the format is in
// tests/data/bad_input/README.md). For each case and each driver it names, this runner makes a
// database (a SQLite file in a temporary folder, or a fresh database on the PostgreSQL server of
// $DBSTEP_TEST_POSTGRES_URL), applies the case's setup, snapshots the database, runs the built
// `dbstep` binary, checks the exit code and stderr, and checks that the database is exactly as it
// was: the SQLite folder's files byte for byte (dbstep's lock file aside), or the same pg_dump.
// Each case is a doctest subcase named after its folder, so a failure names the case.

#include <doctest/doctest.h>

#include <SQLiteCpp/SQLiteCpp.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/driver.hpp"
#include "dbstep/dbstep.hpp"
#include "tests/e2e/run.hpp"
#include "tests/postgres_server.hpp"
#include "tests/support.hpp"

using namespace dbstep::testing;
namespace fs = std::filesystem;

namespace {

const fs::path kCorpus = fs::path(DBSTEP_TEST_DATA_DIR) / "bad_input";

enum class Backend { kSqlite, kPostgres };
const char* name_of(Backend b) { return b == Backend::kSqlite ? "sqlite" : "postgres"; }

// One case.txt, parsed. See tests/data/bad_input/README.md.
struct Case {
  std::string name;
  fs::path dir;
  bool sqlite = true, postgres = true;
  std::vector<std::string> setup;      // dbstep argument lines run before the snapshot
  std::vector<std::string> setup_sql;  // SQL run before the snapshot
  std::string url_params;
  std::map<std::string, std::string> env;
  bool lock_held = false;
  std::string args;
  int exit = -1;
  std::map<std::string, std::vector<std::string>> stderr_has;  // "" = every driver
  std::vector<std::string> stderr_not;
};

std::string trim(std::string s) {
  const char* ws = " \t\r";
  s.erase(0, s.find_first_not_of(ws));
  s.erase(s.find_last_not_of(ws) + 1);
  return s;
}

Case parse_case(const fs::path& dir) {
  Case c;
  c.name = dir.filename().string();
  c.dir = dir;
  std::ifstream in(dir / "case.txt");
  if (!in) throw std::runtime_error(fmt::format("{}: no case.txt", dir.string()));
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    line = trim(line);
    if (line.empty() || line[0] == '#') continue;
    auto colon = line.find(':');
    if (colon == std::string::npos) {
      throw std::runtime_error(fmt::format("{}/case.txt:{}: expected KEY: VALUE", c.name, n));
    }
    std::string key = trim(line.substr(0, colon)), value = trim(line.substr(colon + 1));
    if (key == "driver") {
      c.sqlite = value == "sqlite" || value == "both";
      c.postgres = value == "postgres" || value == "both";
      if (!c.sqlite && !c.postgres) {
        throw std::runtime_error(fmt::format("{}/case.txt:{}: driver is sqlite, postgres or both",
                                             c.name, n));
      }
    } else if (key == "setup") {
      c.setup.push_back(value);
    } else if (key == "setup-sql") {
      c.setup_sql.push_back(value);
    } else if (key == "url-params") {
      c.url_params = value;
    } else if (key == "env") {
      auto eq = value.find('=');
      c.env[value.substr(0, eq)] = eq == std::string::npos ? "" : value.substr(eq + 1);
    } else if (key == "lock") {
      c.lock_held = value == "held";
    } else if (key == "args") {
      c.args = value;
    } else if (key == "exit") {
      c.exit = std::stoi(value);
    } else if (key == "stderr") {
      c.stderr_has[""].push_back(value);
    } else if (key == "stderr-sqlite") {
      c.stderr_has["sqlite"].push_back(value);
    } else if (key == "stderr-postgres") {
      c.stderr_has["postgres"].push_back(value);
    } else if (key == "stderr-not") {
      c.stderr_not.push_back(value);
    } else {
      throw std::runtime_error(fmt::format("{}/case.txt:{}: unknown key \"{}\"", c.name, n, key));
    }
  }
  if (c.args.empty() || c.exit < 0) {
    throw std::runtime_error(fmt::format("{}/case.txt: args and exit are required", c.name));
  }
  return c;
}

std::vector<Case> load_corpus() {
  std::vector<Case> cases;
  for (const auto& entry : fs::directory_iterator(kCorpus)) {
    if (entry.is_directory()) cases.push_back(parse_case(entry.path()));
  }
  std::sort(cases.begin(), cases.end(),
            [](const Case& a, const Case& b) { return a.name < b.name; });
  return cases;
}

// Splits an argument line on blanks; '...' or "..." keep blanks and may be empty.
std::vector<std::string> split_args(const std::string& line) {
  std::vector<std::string> out;
  std::string cur;
  bool in_word = false;
  char quote = 0;
  for (char ch : line) {
    if (quote) {
      if (ch == quote) {
        quote = 0;
      } else {
        cur += ch;
      }
    } else if (ch == '\'' || ch == '"') {
      quote = ch;
      in_word = true;
    } else if (ch == ' ' || ch == '\t') {
      if (in_word) out.push_back(cur);
      cur.clear();
      in_word = false;
    } else {
      cur += ch;
      in_word = true;
    }
  }
  if (in_word) out.push_back(cur);
  return out;
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (auto at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) {
    s.replace(at, from.size(), to);
  }
  return s;
}

// pg_dump from PostgreSQL 15's client (DBSTEP_PG_BIN, else Debian's path, else PATH), without
// the \restrict lines whose key is random on every run.
std::string pg_dump(const std::string& url, const fs::path& tmp) {
  std::string bin = "pg_dump";
  const char* pg_bin = std::getenv("DBSTEP_PG_BIN");
  if (pg_bin && *pg_bin) {
    bin = (fs::path(pg_bin) / "pg_dump").string();
  } else if (fs::exists("/usr/lib/postgresql/15/bin/pg_dump")) {
    bin = "/usr/lib/postgresql/15/bin/pg_dump";
  }
  const fs::path out = tmp / "dump.sql";
  const std::string command = fmt::format("'{}' --no-owner --dbname='{}' >'{}' 2>&1", bin, url,
                                          out.string());
  int status = std::system(command.c_str());
  std::string text = read_file(out);
  fs::remove(out);
  if (status != 0) throw std::runtime_error(fmt::format("pg_dump failed: {}", text));
  std::string kept;
  std::size_t at = 0;
  while (at < text.size()) {
    auto end = text.find('\n', at);
    if (end == std::string::npos) end = text.size() - 1;
    std::string_view line(text.data() + at, end - at + 1);
    if (line.rfind("\\restrict ", 0) != 0 && line.rfind("\\unrestrict ", 0) != 0) kept += line;
    at = end + 1;
  }
  return kept;
}

// Every file of the SQLite database's folder, by name, except dbstep's lock file (which a run
// creates and leaves by design, README "SQLite").
std::map<std::string, std::string> sqlite_snapshot(const fs::path& folder) {
  std::map<std::string, std::string> files;
  for (const auto& entry : fs::directory_iterator(folder)) {
    const std::string name = entry.path().filename().string();
    if (name.size() > 12 && name.substr(name.size() - 12) == ".dbstep-lock") continue;
    files[name] = entry.is_regular_file() ? read_file(entry.path()) : std::string("<not a file>");
  }
  return files;
}

std::string describe(const std::map<std::string, std::string>& files) {
  std::string out;
  for (const auto& [name, bytes] : files) out += fmt::format("{} ({} bytes) ", name, bytes.size());
  return out.empty() ? "(no file)" : out;
}

// One database for one run of one case.
class CaseDatabase {
 public:
  CaseDatabase(Backend backend, const fs::path& tmp) : backend_(backend), tmp_(tmp) {
    if (backend == Backend::kSqlite) {
      folder_ = tmp / "db";
      fs::create_directories(folder_);
      plain_url_ = "sqlite://" + (folder_ / "test.db").string();
    } else {
      std::random_device rd;
      pg_name_ = fmt::format("bad_input_{:08x}{:08x}", rd(), rd());
      pg_exec(postgres_server_url(), "CREATE DATABASE " + pg_name_);
      plain_url_ = url_with_database(postgres_server_url(), pg_name_);
    }
  }
  ~CaseDatabase() {
    if (!pg_name_.empty()) {
      try {
        pg_exec(postgres_server_url(), "DROP DATABASE IF EXISTS " + pg_name_ + " WITH (FORCE)");
      } catch (...) {
      }
    }
  }
  CaseDatabase(const CaseDatabase&) = delete;
  CaseDatabase& operator=(const CaseDatabase&) = delete;

  const std::string& plain_url() const { return plain_url_; }
  // The URL with the case's extra parameters.
  std::string url(const std::string& params) const { return url_with_params(plain_url_, params); }

  void exec(const std::string& sql) {
    if (backend_ == Backend::kSqlite) {
      SQLite::Database d((folder_ / "test.db").string(),
                         SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
      d.exec(sql);
    } else {
      pg_exec(plain_url_, sql);
    }
  }

  std::string snapshot() const {
    if (backend_ == Backend::kSqlite) return describe_sqlite();
    return pg_dump(plain_url_, tmp_);
  }

 private:
  std::string describe_sqlite() const {
    // Names, sizes and bytes: a difference shows as a readable line plus the raw bytes.
    auto files = sqlite_snapshot(folder_);
    std::string out = describe(files) + "\n";
    for (const auto& [name, bytes] : files) out += name + ":" + bytes + "\n";
    return out;
  }

  Backend backend_;
  fs::path tmp_;
  fs::path folder_;
  std::string pg_name_;
  std::string plain_url_;
};

std::string expand(std::string text, const std::map<std::string, std::string>& vars) {
  for (const auto& [key, value] : vars) text = replace_all(text, "{" + key + "}", value);
  return text;
}

void run_case(const Case& c, Backend backend) {
  TempDir tmp;
  const fs::path case_dir = tmp / "case";
  const fs::path work = tmp / "work";
  fs::create_directories(work);
  // A copy, so that the case's symbolic links, dangling ones included, stay what they are.
  fs::copy(c.dir, case_dir, fs::copy_options::recursive | fs::copy_options::copy_symlinks);
  CaseDatabase db(backend, tmp.path());

  std::map<std::string, std::string> vars = {
      {"db", db.url(c.url_params)},
      {"db-plain", db.plain_url()},
      {"migrations", (case_dir / "migrations").string()},
      {"case", case_dir.string()},
      {"tmp", tmp.str()},
  };
  auto args_of = [&](const std::string& line) {
    std::vector<std::string> args;
    for (auto& a : split_args(line)) args.push_back(expand(a, vars));
    return args;
  };
  std::map<std::string, std::string> env;
  for (const auto& [k, v] : c.env) env[k] = expand(v, vars);

  for (const auto& line : c.setup) {
    auto r = run_dbstep(args_of(line), work);
    INFO("setup: ", line, "\nstdout: ", r.out, "\nstderr: ", r.err);
    REQUIRE(r.code == 0);
  }
  for (const auto& sql : c.setup_sql) db.exec(sql);

  // Another process's run holds dbstep's lock: a driver of the library, in this process, which
  // takes the same lock the dbstep binary would (the flock()ed file, the advisory lock).
  std::unique_ptr<dbstep::Driver> holder;
  if (c.lock_held) {
    holder = dbstep::builtin_registry().open_driver(db.plain_url());
    holder->lock(std::chrono::milliseconds(0));
  }

  const std::string before = db.snapshot();
  auto r = run_dbstep(args_of(c.args), work, env);
  INFO("args: ", c.args, "\nstdout: ", r.out, "\nstderr: ", r.err);
  CHECK(r.code == c.exit);
  for (const auto& key : {std::string(), std::string(name_of(backend))}) {
    auto it = c.stderr_has.find(key);
    if (it == c.stderr_has.end()) continue;
    for (const auto& fragment : it->second) {
      const std::string want = expand(fragment, vars);
      INFO("stderr should contain: ", want);
      CHECK(contains(r.err, want));
    }
  }
  for (const auto& fragment : c.stderr_not) {
    const std::string unwanted = expand(fragment, vars);
    INFO("stderr should not contain: ", unwanted);
    CHECK_FALSE(contains(r.err, unwanted));
  }
  const std::string after = db.snapshot();
  // The snapshots are long (a database's bytes): compare first, show the difference's head.
  const bool unchanged = before == after;
  if (!unchanged) {
    INFO("before: ", before.substr(0, before.find('\n')));
    INFO("after:  ", after.substr(0, after.find('\n')));
    if (backend == Backend::kPostgres) {
      INFO("dump before:\n", before, "\ndump after:\n", after);
      CHECK(unchanged);
    } else {
      CHECK(unchanged);
    }
  }
  if (holder) holder->unlock();
}

void run_corpus(Backend backend) {
  const auto cases = load_corpus();
  REQUIRE(cases.size() >= 60);
  for (const auto& c : cases) {
    if (backend == Backend::kSqlite ? !c.sqlite : !c.postgres) continue;
    SUBCASE(c.name.c_str()) {
      try {
        run_case(c, backend);
      } catch (const std::exception& e) {
        // Setting the case up failed (no server, a bad setup line): a failure of this case.
        const std::string what = "case " + c.name + " on " + name_of(backend) + ": " + e.what();
        FAIL_CHECK(what);
      }
    }
  }
}

}  // namespace

TEST_CASE("bad-input corpus on SQLite: each case fails as expected and changes nothing") {
  run_corpus(Backend::kSqlite);
}

TEST_CASE("bad-input corpus on PostgreSQL: each case fails as expected and changes nothing") {
  run_corpus(Backend::kPostgres);
}
