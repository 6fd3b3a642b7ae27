// End-to-end: `dbstep verify` on the real PostgreSQL server (DBSTEP_TEST_POSTGRES_URL; without
// it these cases fail, never skip).

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <nlohmann/json.hpp>
#include <random>
#include <stdexcept>
#include <string>

#include "tests/e2e/run.hpp"
#include "tests/postgres_server.hpp"
#include "tests/support.hpp"

using namespace dbstep::testing;

namespace {

const std::string kVerifyData = std::string(DBSTEP_TEST_DATA_DIR) + "/verify/";

// The server URL with user=ROLE added (libpq: a later keyword wins).
std::string as_role(const std::string& role) {
  return url_with_params(postgres_server_url(), "user=" + role);
}

// Whether the database the report `out` names as its scratch database still exists (other
// tests may run verify at the same time: only this run's own scratch database is looked at).
bool scratch_left(const std::string& out) {
  const auto at = out.find("dbname=dbstep_verify_");
  if (at == std::string::npos) throw std::runtime_error("no scratch database named in: " + out);
  const std::string name = out.substr(at + 7, std::string("dbstep_verify_").size() + 12);
  return pg_scalar(postgres_server_url(),
                   "SELECT count(*) FROM pg_database WHERE datname = '" + name + "'") != "0";
}

}  // namespace

TEST_CASE("e2e verify: the default embedded migration set, PostgreSQL") {
  // The same finding as on SQLite (cli_verify_test.cpp): migration 6's down adds channels.topic
  // back as the last column.
  TempDir dir;
  {
    const std::string db = postgres_server_url();
    auto r = run_dbstep({"verify", "--json", "-s", "embedded://", "-d", db}, dir.path());
    INFO(r.out << r.err);
    CHECK(r.code == 1);
    auto j = nlohmann::json::parse(r.out);
    CHECK(j["checked"].size() == 6);
    REQUIRE(j["problems"].size() == 1);
    CHECK(j["problems"][0]["version"] == 6);
    CHECK(j["problems"][0]["kind"] == "not_restored");
    CHECK(j["problems"][0]["difference"].get<std::string>().find("topic") != std::string::npos);
  }
}

TEST_CASE("e2e verify postgres: fixtures, the scratch database dropped, -d untouched") {
  TempDir dir;
  auto ok = run_dbstep({"verify", "-s", kVerifyData + "postgres/pass", "-d", postgres_server_url()},
                       dir.path());
  INFO(ok.out << ok.err);
  CHECK(ok.code == 0);
  auto bad = run_dbstep(
      {"verify", "-s", kVerifyData + "postgres/wrong_trigger", "-d", postgres_server_url()},
      dir.path());
  CHECK(bad.code == 1);
  CHECK(bad.out.find("migration 3 (b_trigger): 3_b_trigger.down.sql does not restore the "
                     "schema") != std::string::npos);
  auto fails =
      run_dbstep({"verify", "-s", kVerifyData + "postgres/down_fails", "-d", postgres_server_url()},
                 dir.path());
  CHECK(fails.code == 1);
  CHECK(fails.out.find("the down failed") != std::string::npos);
  CHECK_FALSE(scratch_left(ok.out));
  CHECK_FALSE(scratch_left(bad.out));
  CHECK_FALSE(scratch_left(fails.out));
}

TEST_CASE("e2e verify postgres: a role without CREATEDB gets the right named, and --scratch") {
  TempDir dir;
  pg_exec(postgres_server_url(), "DROP ROLE IF EXISTS verify_nocreatedb");
  pg_exec(postgres_server_url(), "CREATE ROLE verify_nocreatedb LOGIN NOCREATEDB");
  std::random_device rd;
  const std::string scratch = fmt::format("verify_own_{:08x}", rd());
  pg_exec(postgres_server_url(), "CREATE DATABASE " + scratch + " OWNER verify_nocreatedb");
  auto r = run_dbstep({"verify", "-s", "embedded://", "-d", as_role("verify_nocreatedb")},
                      dir.path());
  CHECK(r.code == 1);
  CHECK(r.err.find("role verify_nocreatedb lacks the CREATEDB right") != std::string::npos);
  CHECK(r.err.find("--scratch URL") != std::string::npos);
  // The same role verifies on a database it was given.
  const std::string scratch_url = as_role("verify_nocreatedb") + "&dbname=" + scratch;
  auto given = run_dbstep({"verify", "-s", kVerifyData + "postgres/pass", "-d",
                           as_role("verify_nocreatedb"), "--scratch", scratch_url},
                          dir.path());
  INFO(given.out << given.err);
  CHECK(given.code == 0);
  CHECK(pg_scalar(scratch_url, "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON "
                               "n.oid = c.relnamespace WHERE n.nspname = 'public'") == "0");
  pg_exec(postgres_server_url(), "DROP DATABASE " + scratch + " WITH (FORCE)");
  pg_exec(postgres_server_url(), "DROP ROLE verify_nocreatedb");
}
