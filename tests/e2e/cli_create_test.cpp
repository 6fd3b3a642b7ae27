// End-to-end (issue 11, item 2): `dbstep create` with golang-migrate's flags and rules, run as
// a Makefile runs it; every refused create leaves the folder exactly as it was.

#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <ctime>
#include <string>
#include <vector>

#include "tests/e2e/cli_safe_support.hpp"
#include "tests/e2e/run.hpp"
#include "tests/support.hpp"

using namespace dbstep::testing;

namespace {

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start < text.size()) {
    auto end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    out.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

std::string utc_now(const char* format) {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  ::gmtime_r(&now, &tm);
  char text[64];
  std::strftime(text, sizeof text, format, &tm);
  return text;
}

}  // namespace

TEST_CASE("create: golang-migrate's Makefile line makes the folder and numbered pairs") {
  TempDir tmp;
  auto r = run_dbstep({"create", "-ext", "sql", "-dir", "db/migrations", "-seq", "add_users"},
                      tmp.path());
  CHECK(r.code == 0);
  CHECK(r.err.empty());
  const auto dir = std::filesystem::canonical(tmp.path()) / "db" / "migrations";
  CHECK(lines(r.out) == std::vector<std::string>{(dir / "000001_add_users.up.sql").string(),
                                                 (dir / "000001_add_users.down.sql").string()});
  CHECK(std::filesystem::file_size(dir / "000001_add_users.up.sql") == 0);
  CHECK(std::filesystem::file_size(dir / "000001_add_users.down.sql") == 0);

  // -ext .sql is -ext sql; the next number follows the highest.
  r = run_dbstep({"create", "-ext", ".sql", "-dir", "db/migrations/", "-seq", "add_orders"},
                 tmp.path());
  CHECK(r.code == 0);
  CHECK(std::filesystem::exists(dir / "000002_add_orders.up.sql"));
  CHECK(std::filesystem::exists(dir / "000002_add_orders.down.sql"));
  // Options after the name, two dashes, --seq=true: the same.
  r = run_dbstep({"create", "add_items", "--ext=sql", "--dir", "db/migrations", "--seq=true"},
                 tmp.path());
  CHECK(r.code == 0);
  CHECK(std::filesystem::exists(dir / "000003_add_items.up.sql"));
  // Highest by number, not by name: 9 and 10 give 11.
  write_file(dir / "9_x.up.sql", "");
  write_file(dir / "10_y.up.sql", "");
  r = run_dbstep({"create", "-ext", "sql", "-dir", "db/migrations", "-seq", "z"}, tmp.path());
  CHECK(r.code == 0);
  CHECK(std::filesystem::exists(dir / "000011_z.up.sql"));
  std::filesystem::remove(dir / "9_x.up.sql");
  std::filesystem::remove(dir / "10_y.up.sql");
  std::filesystem::remove(dir / "000011_z.up.sql");
  std::filesystem::remove(dir / "000011_z.down.sql");

  // The files are migrations dbstep reads (empty files: only the version moves).
  write_file(dir / "000001_add_users.up.sql", "CREATE TABLE users (id int);\n");
  r = run_dbstep({"-path", "db/migrations", "-database", "sqlite3://app.db", "up"}, tmp.path());
  CHECK(r.code == 0);
  CHECK(sqlite_scalar(tmp / "app.db", "SELECT version FROM schema_migrations") == 3);

  // -digits 4 in an empty folder: 0001 (golang-migrate's test).
  r = run_dbstep({"create", "-ext", "sql", "-dir", "other", "-seq", "-digits", "4", "name"},
                 tmp.path());
  CHECK(r.code == 0);
  CHECK(std::filesystem::exists(tmp / "other" / "0001_name.up.sql"));
  CHECK(std::filesystem::exists(tmp / "other" / "0001_name.down.sql"));
}

TEST_CASE("create: timestamps in a Go layout and a time zone") {
  TempDir tmp;
  const std::string before = utc_now("%Y%m%d%H%M%S");
  auto r = run_dbstep({"create", "-ext", "sql", "add_users"}, tmp.path());  // the current folder
  const std::string after = utc_now("%Y%m%d%H%M%S");
  CHECK(r.code == 0);
  const auto files = lines(r.out);
  REQUIRE(files.size() == 2);
  const std::string up = std::filesystem::path(files[0]).filename().string();
  CHECK(up.size() == std::string("20061231150405_add_users.up.sql").size());
  const std::string stamp = up.substr(0, 14);
  CHECK(stamp >= before);
  CHECK(stamp <= after);
  CHECK(std::filesystem::path(files[0]).parent_path() == std::filesystem::canonical(tmp.path()));

  r = run_dbstep({"create", "-ext", "sql", "-dir", "u", "-format", "unix", "a"}, tmp.path());
  CHECK(r.code == 0);
  auto name = std::filesystem::path(lines(r.out)[0]).filename().string();
  CHECK(name.find('_') == 10);
  r = run_dbstep({"create", "-ext", "sql", "-dir", "n", "-format", "unixNano", "a"}, tmp.path());
  CHECK(r.code == 0);
  name = std::filesystem::path(lines(r.out)[0]).filename().string();
  CHECK(name.find('_') == 19);
  // Go layout elements: 2006 01 02 15, in Tokyo (UTC+9, no daylight saving).
  auto tokyo_hour = [] {
    const std::time_t now = std::time(nullptr) + 9 * 3600;
    std::tm tm{};
    ::gmtime_r(&now, &tm);
    char text[16];
    std::strftime(text, sizeof text, "%Y%m%d%H", &tm);
    return std::string(text);
  };
  const std::string hour_before = tokyo_hour();
  r = run_dbstep({"create", "-ext", "sql", "-dir", "t", "-format", "200601021504", "-tz",
                  "Asia/Tokyo", "a"},
                 tmp.path());
  const std::string hour_after = tokyo_hour();
  CHECK(r.code == 0);
  name = std::filesystem::path(lines(r.out)[0]).filename().string();
  CHECK((name.substr(0, 10) == hour_before || name.substr(0, 10) == hour_after));
  r = run_dbstep({"create", "-ext", "sql", "-dir", "d", "-format", "20060102", "-tz", "UTC", "a"},
                 tmp.path());
  CHECK(r.code == 0);
  CHECK(std::filesystem::path(lines(r.out)[0]).filename().string() ==
        utc_now("%Y%m%d") + "_a.up.sql");
}

TEST_CASE("create: --json prints one document with the version and both paths") {
  TempDir tmp;
  auto r = run_dbstep({"create", "-ext", "sql", "-dir", "m", "-seq", "add_users", "--json"},
                      tmp.path());
  CHECK(r.code == 0);
  const auto doc = nlohmann::json::parse(r.out);
  CHECK(doc["version"] == 1);
  CHECK(doc["name"] == "add_users");
  const auto dir = std::filesystem::canonical(tmp.path()) / "m";
  CHECK(doc["up_file"] == (dir / "000001_add_users.up.sql").string());
  CHECK(doc["down_file"] == (dir / "000001_add_users.down.sql").string());
  CHECK(std::filesystem::exists(doc["up_file"].get<std::string>()));
  CHECK(std::filesystem::exists(doc["down_file"].get<std::string>()));
  // An error is a JSON document too.
  r = run_dbstep({"create", "-dir", "m", "x", "--json"}, tmp.path());
  CHECK(r.code == 2);
  const auto err = nlohmann::json::parse(r.out);
  CHECK(err["error"]["code"] == "usage");
  CHECK(err["error"]["message"] == "-ext flag must be specified");
}

TEST_CASE("create: bad input is refused with golang-migrate's messages and nothing is made") {
  TempDir tmp;
  write_file(tmp / "m" / "000001_a.up.sql", "");
  write_file(tmp / "m" / "000001_a.down.sql", "");
  write_file(tmp / "m" / "9_nine.up.sql", "");
  write_file(tmp / "blocker", "a file where a folder would go");
  struct Case {
    std::vector<std::string> args;
    int code;
    std::string message;
  };
  const std::string year = utc_now("%Y");
  const std::vector<Case> cases = {
      {{"create"}, 2, "please specify name"},
      {{"create", "-dir", "m", "x"}, 2, "-ext flag must be specified"},
      {{"create", "-ext", "", "-dir", "m", "x"}, 2, "-ext flag must be specified"},
      {{"create", "-ext", "sql", "-dir", "m", "-seq", "-format", "unix", "x"}, 2,
       "The seq and format options are mutually exclusive"},
      {{"create", "-ext", "sql", "-dir", "m", "-seq", "-digits", "0", "x"}, 2,
       "Digits must be positive"},
      {{"create", "-ext", "sql", "-dir", "m", "-seq", "-digits", "many", "x"}, 2,
       "invalid value \"many\" for flag -digits"},
      {{"create", "-ext", "sql", "-dir", "m", "-format", "", "x"}, 2,
       "Time format may not be empty"},
      {{"create", "-ext", "sql", "-dir", "m", "-format", "2006-01-02", "x"}, 2,
       "which is not a migration version (digits only)"},
      {{"create", "-ext", "sql", "-dir", "m", "-tz", "Nowhere/Land", "x"}, 2,
       "unknown time zone Nowhere/Land"},
      {{"create", "-ext", "sql", "-dir", "m", "-tz", "../etc/passwd", "x"}, 2,
       "time: invalid location name"},
      {{"create", "-ext", "sql", "-dir", "m", "a/b"}, 2, "must not contain '/'"},
      {{"create", "-ext", "sql", "-dir", "m", "x", "y"}, 2, "create takes one NAME"},
      {{"-d", "app.db", "create", "-ext", "sql", "-dir", "m", "-seq", "-digits", "1", "x"}, 1,
       "Next sequence number 10 too large. At most 1 digits are allowed"},
      // Over an existing version: golang-migrate's check, and the same version in another width.
      {{"create", "-ext", "sql", "-dir", "m", "-seq", "-format", "20060102150405", "-digits", "1",
        "x"},
       1, "too large"},
      {{"create", "-ext", "sql", "-dir", "blocker/m", "x"}, 1, "nothing was created"},
      {{"create", "-ext", "sql", "-dir", "m", "-verbose", "-seq", "x", "--backup"}, 2,
       "create does not take --backup"},
      {{"version", "-ext", "sql"}, 2, "version does not take --ext"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.message);
    const auto before = folder_bytes(tmp.path());
    auto r = run_dbstep(c.args, tmp.path());
    CHECK(r.code == c.code);
    CHECK(contains(r.err, c.message));
    CHECK(r.out.empty());
    CHECK(folder_bytes(tmp.path()) == before);
  }

  // A version that exists: golang-migrate's message, whatever the width.
  write_file(tmp / "y" / (year + "_old.up.sql"), "");
  auto before = folder_bytes(tmp.path());
  auto r = run_dbstep({"create", "-ext", "sql", "-dir", "y", "-format", "2006", "new"}, tmp.path());
  CHECK(r.code == 1);
  CHECK(contains(r.err, "duplicate migration version: " + year));
  CHECK(folder_bytes(tmp.path()) == before);
  std::filesystem::rename(tmp / "y" / (year + "_old.up.sql"), tmp / "y" / ("0" + year + "_old.up.sql"));
  before = folder_bytes(tmp.path());
  r = run_dbstep({"create", "-ext", "sql", "-dir", "y", "-format", "2006", "new"}, tmp.path());
  CHECK(r.code == 1);
  CHECK(contains(r.err, "duplicate migration version: " + year + " (0" + year + "_old.up.sql"));
  CHECK(folder_bytes(tmp.path()) == before);
  // The same version with a down file only, or another extension, is a duplicate too.
  write_file(tmp / "s" / "000001_a.down.txt", "");
  before = folder_bytes(tmp.path());
  r = run_dbstep({"create", "-ext", "sql", "-dir", "s", "-seq", "-digits", "3", "b"}, tmp.path());
  CHECK(r.code == 1);
  CHECK(contains(r.err, "duplicate migration version: 001"));
  CHECK(folder_bytes(tmp.path()) == before);
}

TEST_CASE("create: a missing folder is made; neither file is left alone when one fails") {
  TempDir tmp;
  auto r = run_dbstep({"create", "-ext", "sql", "-dir", "a/b/c", "-seq", "x"}, tmp.path());
  CHECK(r.code == 0);
  CHECK(std::filesystem::exists(tmp / "a" / "b" / "c" / "000001_x.up.sql"));

  // A name whose up file fits the system's 255-byte limit but whose down file does not: the up
  // file is removed again, and the folders made for it too.
  const std::string name(255 - std::string("000001_.up.sql").size(), 'n');
  auto before = folder_bytes(tmp.path());
  r = run_dbstep({"create", "-ext", "sql", "-dir", "new/folder", "-seq", name}, tmp.path());
  CHECK(r.code == 1);
  CHECK(contains(r.err, ".down.sql: File name too long"));
  CHECK(contains(r.err, "was removed again, nothing was created"));
  CHECK(folder_bytes(tmp.path()) == before);
  CHECK_FALSE(std::filesystem::exists(tmp / "new"));
  r = run_dbstep({"create", "-ext", "sql", "-dir", "a/b/c", "-seq", name}, tmp.path());
  CHECK(r.code == 1);
  CHECK(folder_bytes(tmp.path()) == before);

  // A folder that cannot be written (as an unprivileged user: root writes anywhere).
  std::filesystem::create_directories(tmp / "ro");
  std::filesystem::permissions(tmp / "ro", std::filesystem::perms::owner_read |
                                               std::filesystem::perms::owner_exec |
                                               std::filesystem::perms::others_read |
                                               std::filesystem::perms::others_exec);
  std::filesystem::permissions(tmp.path(), std::filesystem::perms::all);
  before = folder_bytes(tmp.path());
  r = run_dbstep_limited({"create", "-ext", "sql", "-dir", "ro", "-seq", "x"}, tmp.path(),
                         Limits{std::nullopt, true});
  CHECK(r.code == 1);
  CHECK(contains(r.err, "Permission denied"));
  CHECK(contains(r.err, "nothing was created"));
  CHECK(folder_bytes(tmp.path()) == before);
}
