// End-to-end crash test: `dbstep migrate all` and `dbstep rollback all --yes` killed with SIGKILL
// at random points, on both drivers, over a few hundred generated migrations whose presence can
// be checked completely. After every kill the database must be at a clean version with every
// migration up to it whole and none above it; in the end it must equal an uninterrupted run.
//
// Each migration N creates table t_N, fills it with kRows rows in separate statements and records
// N in a shared table `log`; its down deletes in separate statements and drops t_N. A migration
// cut half way therefore shows: rows missing, or `log` and t_N disagreeing.
//
// Migrations marked `-- dbstep:no-transaction` run statement by statement under golang-migrate's
// dirty protocol (mark the target version dirty, run, mark it clean), so a kill inside one may
// legitimately leave it dirty. The "no-transaction" cases state exactly what is allowed then: the
// recorded version is dirty at that migration (up: its own version; down: the version below it),
// every other migration is whole or absent as for a clean version, and the migration itself shows
// a prefix of its statements. Those migrations are written to be run again (IF NOT EXISTS, ON
// CONFLICT DO NOTHING), so `force` to the version before it plus one more step recovers, and the
// test does exactly that. A dirty state at a migration that runs in a transaction is a failure.
//
// The suite runs a few kills per case (DBSTEP_CRASH_ROUNDS, default 2 rounds of one killed
// migrate and one killed rollback). scripts/crash-test.sh ROUNDS runs the same cases with more.
// The kill delays come from DBSTEP_CRASH_SEED (default 1, printed with every failure), so a
// failure can be rerun with the same sequence; the run's timing still varies from run to run.
// DBSTEP_CRASH_MIGRATIONS sets how many migrations (default 250), DBSTEP_CRASH_URL_PARAMS adds
// URL parameters to the crashed database's URL (run one driver's cases with it:
// `_journal_mode=wal` for SQLite; `x-no-tx-wrap=true` makes every SQLite migration run outside a
// transaction, and the SQLite cases must then fail: a check that the kills land mid-migration).

#include <doctest/doctest.h>
#include <signal.h>

#include <fmt/format.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "tests/e2e/run.hpp"
#include "tests/e2e/target.hpp"
#include "tests/support.hpp"

using namespace dbstep::testing;

namespace {

using Clock = std::chrono::steady_clock;

constexpr int kRows = 4;  // rows each migration inserts, one statement each

long env_number(const char* name, long fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  return std::strtol(v, nullptr, 10);
}

// The generated migrations 1..count.
struct CrashSet {
  int count = 0;
  int no_tx_every = 0;  // 0: none; n: every n-th migration but the first runs outside a transaction

  bool no_tx(std::int64_t v) const { return no_tx_every > 0 && v > 1 && v % no_tx_every == 0; }

  void write(const std::filesystem::path& dir) const {
    for (int v = 1; v <= count; ++v) {
      std::string up, down;
      if (no_tx(v)) {
        up = fmt::format("-- dbstep:no-transaction\nCREATE TABLE IF NOT EXISTS t_{} (i int PRIMARY KEY);\n", v);
        for (int i = 1; i <= kRows; ++i) {
          up += fmt::format("INSERT INTO t_{} VALUES ({}) ON CONFLICT DO NOTHING;\n", v, i);
        }
        up += fmt::format("INSERT INTO log VALUES ({}) ON CONFLICT DO NOTHING;\n", v);
        down = fmt::format("-- dbstep:no-transaction\nDELETE FROM log WHERE n = {};\nDROP TABLE IF EXISTS t_{};\n", v, v);
      } else {
        if (v == 1) up = "CREATE TABLE log (n int PRIMARY KEY);\n";
        up += fmt::format("CREATE TABLE t_{} (i int PRIMARY KEY);\n", v);
        for (int i = 1; i <= kRows; ++i) up += fmt::format("INSERT INTO t_{} VALUES ({});\n", v, i);
        up += fmt::format("INSERT INTO log VALUES ({});\n", v);
        down = fmt::format("DELETE FROM log WHERE n = {};\n", v);
        for (int i = 1; i <= kRows; ++i) down += fmt::format("DELETE FROM t_{} WHERE i = {};\n", v, i);
        down += fmt::format("DROP TABLE t_{};\n", v);
        if (v == 1) down += "DROP TABLE log;\n";
      }
      write_file(dir / fmt::format("{:04}_t{}.up.sql", v, v), up);
      write_file(dir / fmt::format("{:04}_t{}.down.sql", v, v), down);
    }
  }
};

using Tables = std::map<std::string, std::vector<std::string>>;

std::vector<std::string> sorted_numbers(std::int64_t from, std::int64_t to) {
  std::vector<std::string> out;
  for (auto i = from; i <= to; ++i) out.push_back(std::to_string(i));
  std::sort(out.begin(), out.end());
  return out;
}

// The tables of a database at clean version `v` (0: none): migrations 1..v whole.
Tables whole_up_to(std::int64_t v) {
  Tables t;
  if (v >= 1) t["log"] = sorted_numbers(1, v);
  for (std::int64_t i = 1; i <= v; ++i) t[fmt::format("t_{}", i)] = sorted_numbers(1, kRows);
  return t;
}

// What differs between two table sets, briefly (the first few differences).
std::string difference(const Tables& expected, const Tables& actual) {
  std::vector<std::string> out;
  for (const auto& [name, rows] : expected) {
    auto it = actual.find(name);
    if (it == actual.end()) {
      out.push_back(name + " missing");
    } else if (it->second != rows) {
      out.push_back(fmt::format("{} holds [{}], expected [{}]", name, fmt::join(it->second, ","),
                                fmt::join(rows, ",")));
    }
  }
  for (const auto& [name, rows] : actual) {
    if (!expected.count(name)) out.push_back(fmt::format("{} [{}] should not exist", name, fmt::join(rows, ",")));
  }
  if (out.size() > 8) {
    auto more = out.size() - 8;
    out.resize(8);
    out.push_back(fmt::format("and {} more", more));
  }
  return fmt::format("{}", fmt::join(out, "; "));
}

enum class Phase { kUp, kDown };

// What one migration `v` shows in the database: its table's rows (none: no table) and whether
// `log` holds v.
struct Trace {
  std::optional<std::vector<std::string>> rows;
  bool logged = false;
  bool operator==(const Trace&) const = default;
};

// The states migration `v` passes through, statement by statement, run outside a transaction.
std::vector<Trace> prefixes(Phase phase) {
  std::vector<Trace> out;
  if (phase == Phase::kUp) {
    out.push_back({std::nullopt, false});
    for (int k = 0; k <= kRows; ++k) out.push_back({sorted_numbers(1, k), false});
    out.push_back({sorted_numbers(1, kRows), true});
  } else {
    out.push_back({sorted_numbers(1, kRows), true});
    out.push_back({sorted_numbers(1, kRows), false});
    out.push_back({std::nullopt, false});
  }
  return out;
}

// Empty when `s` is a state a kill may leave during `phase` (see the top of the file); otherwise
// what is wrong with it.
std::string judge(const Snapshot& s, const CrashSet& set, Phase phase) {
  if (s.version_rows > 1) return fmt::format("the version table holds {} rows", s.version_rows);
  const std::int64_t v = s.version.value_or(0);
  if (v < 0 || v > set.count) return fmt::format("recorded version {} is not a migration", v);
  if (!s.dirty) {
    auto diff = difference(whole_up_to(v), s.tables);
    if (diff.empty()) return "";
    return fmt::format("clean at version {} but not every migration up to it is whole and none "
                       "above it: {}", v, diff);
  }
  // Dirty: migration m was running outside a transaction.
  const std::int64_t m = phase == Phase::kUp ? v : v + 1;
  if (!s.version || m < 1 || m > set.count || !set.no_tx(m)) {
    return fmt::format("dirty at version {} after a killed {}, but migration {} runs in a "
                       "transaction: a kill must leave it clean", v,
                       phase == Phase::kUp ? "migrate" : "rollback", m);
  }
  Tables rest = s.tables;
  Trace trace;
  if (auto it = rest.find(fmt::format("t_{}", m)); it != rest.end()) {
    trace.rows = it->second;
    rest.erase(it);
  }
  if (auto it = rest.find("log"); it != rest.end()) {
    auto& log = it->second;
    auto at = std::find(log.begin(), log.end(), std::to_string(m));
    if (at != log.end()) {
      trace.logged = true;
      log.erase(at);
    }
  }
  auto diff = difference(whole_up_to(m - 1), rest);
  if (!diff.empty()) {
    return fmt::format("dirty at version {} (migration {} running outside a transaction), but "
                       "the other migrations are not whole up to {} and absent above: {}",
                       v, m, m - 1, diff);
  }
  auto allowed = prefixes(phase);
  if (std::find(allowed.begin(), allowed.end(), trace) == allowed.end()) {
    return fmt::format("dirty at version {}, but migration {} is not a prefix of its {} "
                       "statements: t_{} {}, log {} {}",
                       v, m, phase == Phase::kUp ? "up" : "down", m,
                       trace.rows ? fmt::format("[{}]", fmt::join(*trace.rows, ",")) : "absent",
                       trace.logged ? "holds" : "lacks", m);
  }
  return "";
}

double ms_since(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

void crash_test(DriverKind kind, bool with_no_tx, const char* case_name) {
  const long rounds = env_number("DBSTEP_CRASH_ROUNDS", 2);
  const auto seed = static_cast<std::uint64_t>(env_number("DBSTEP_CRASH_SEED", 1));
  CrashSet set{static_cast<int>(env_number("DBSTEP_CRASH_MIGRATIONS", 250)), with_no_tx ? 5 : 0};
  std::string history;  // every kill so far, for the failure message
  const std::string reproduce =
      fmt::format("DBSTEP_CRASH_SEED={} DBSTEP_CRASH_ROUNDS={} DBSTEP_CRASH_MIGRATIONS={}{} "
                  "tests/dbstep_tests -tc='{}'", seed, rounds, set.count,
                  std::getenv("DBSTEP_CRASH_URL_PARAMS")
                      ? fmt::format(" DBSTEP_CRASH_URL_PARAMS='{}'", std::getenv("DBSTEP_CRASH_URL_PARAMS"))
                      : "",
                  case_name);
  INFO("reproduce: ", reproduce);
  INFO("kills so far:", history);

  TempDir tmp;
  const std::string dir = (tmp / "m").string();
  set.write(dir);
  auto db = make_target(kind, tmp.path(), "crash");
  // Extra URL parameters for the crashed database (not the reference), e.g. _journal_mode=wal.
  const char* params = std::getenv("DBSTEP_CRASH_URL_PARAMS");
  auto dbstep = [&](const TestTarget& t, std::vector<std::string> args) {
    std::vector<std::string> all = {"-d", &t == db.get() && params ? t.url(params) : t.url(), "-s", dir};
    all.insert(all.end(), args.begin(), args.end());
    return all;
  };
  const std::vector<std::string> migrate_all = {"migrate", "all"};
  const std::vector<std::string> rollback_all = {"rollback", "all", "--yes"};

  // The uninterrupted run, on a database of its own: what the end must equal, and how long a
  // run takes here (kills are spread over that).
  Snapshot full, empty;
  double up_ms = 0, down_ms = 0;
  {
    auto ref = make_target(kind, tmp.path(), "reference");
    auto t0 = Clock::now();
    auto r = run_dbstep(dbstep(*ref, migrate_all), tmp.path());
    up_ms = ms_since(t0);
    REQUIRE_MESSAGE(r.code == 0, r.err);
    full = ref->snapshot();
    REQUIRE(full.version == set.count);
    REQUIRE_FALSE(full.dirty);
    REQUIRE(difference(whole_up_to(set.count), full.tables) == "");
    t0 = Clock::now();
    r = run_dbstep(dbstep(*ref, rollback_all), tmp.path());
    down_ms = ms_since(t0);
    REQUIRE_MESSAGE(r.code == 0, r.err);
    empty = ref->snapshot();
    REQUIRE(empty.tables.empty());
    REQUIRE_FALSE(empty.version);
  }

  std::mt19937_64 rng(seed);
  Snapshot now = db->snapshot();
  int interrupted = 0, dirty_seen = 0;
  // Until at least one kill has landed in the middle of a run (a few extra rounds at most), or
  // nothing was tested.
  for (long round = 1; round <= rounds || (interrupted == 0 && round <= rounds + 10); ++round) {
    for (Phase phase : {Phase::kUp, Phase::kDown}) {
      const std::int64_t v = now.version.value_or(0);
      const auto pending = phase == Phase::kUp ? set.count - v : v;
      const double per = (phase == Phase::kUp ? up_ms : down_ms) / set.count;
      // Anywhere from before the process starts to about when it would finish.
      const double delay = std::uniform_real_distribution<double>(0, per * (pending + 5))(rng);
      const auto& args = phase == Phase::kUp ? migrate_all : rollback_all;
      Process p(dbstep(*db, args), tmp.path());
      std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(delay));
      ::kill(p.pid(), SIGKILL);
      auto r = p.wait();
      Snapshot after = db->snapshot();
      const bool killed = r.code == 128 + SIGKILL;
      history += fmt::format("\n  round {} {}: SIGKILL after {:.1f} ms, {} at version {} -> {}{}",
                             round, fmt::join(args, " "), delay,
                             killed ? "killed" : fmt::format("exit {}", r.code), v,
                             after.version ? std::to_string(*after.version) : "none",
                             after.dirty ? " dirty" : "");
      REQUIRE_MESSAGE((killed || r.code == 0), "dbstep failed without being killed: ", r.err);
      auto verdict = judge(after, set, phase);
      REQUIRE_MESSAGE(verdict.empty(), verdict);
      if (r.code == 0) {  // it finished before the kill
        CHECK(after == (phase == Phase::kUp ? full : empty));
      }
      if (killed && after != now && after != (phase == Phase::kUp ? full : empty)) ++interrupted;
      if (after.dirty) {
        // Recover as a person would: record the version before the half-run migration, run it again.
        ++dirty_seen;
        const std::int64_t redo = phase == Phase::kUp ? *after.version - 1 : *after.version + 1;
        auto f = run_dbstep(dbstep(*db, {"force", std::to_string(redo)}), tmp.path());
        REQUIRE_MESSAGE(f.code == 0, f.err);
        auto again = run_dbstep(dbstep(*db, {phase == Phase::kUp ? "migrate" : "rollback", "1"}), tmp.path());
        REQUIRE_MESSAGE(again.code == 0, again.err);
        after = db->snapshot();
        history += fmt::format(" -> force {} and one more step -> {}", redo,
                               after.version ? std::to_string(*after.version) : "none");
        CHECK_FALSE(after.dirty);
        auto recovered = judge(after, set, phase);
        REQUIRE_MESSAGE(recovered.empty(), recovered);
      }
      now = after;
    }
  }

  // Finally, uninterrupted: the database equals the reference run, up and down.
  auto r = run_dbstep(dbstep(*db, migrate_all), tmp.path());
  REQUIRE_MESSAGE(r.code == 0, r.err);
  now = db->snapshot();
  CHECK_MESSAGE(now == full, difference(full.tables, now.tables), " ", describe(now).substr(0, 200));
  r = run_dbstep(dbstep(*db, rollback_all), tmp.path());
  REQUIRE_MESSAGE(r.code == 0, r.err);
  now = db->snapshot();
  CHECK_MESSAGE(now == empty, difference(empty.tables, now.tables), " ", describe(now).substr(0, 200));
  MESSAGE(fmt::format("{}: {} kill(s) interrupted a run half way, {} left a no-transaction "
                      "migration dirty; one uninterrupted run: up {:.0f} ms, down {:.0f} ms",
                      case_name, interrupted, dirty_seen, up_ms, down_ms));
  CHECK(interrupted >= 1);
}

}  // namespace

TEST_CASE("e2e crash sqlite: kill -9 during migrate all and rollback all leaves every migration whole or absent") {
  crash_test(DriverKind::kSqlite, false, "e2e crash sqlite: kill -9 during*");
}

TEST_CASE("e2e crash postgres: kill -9 during migrate all and rollback all leaves every migration whole or absent") {
  crash_test(DriverKind::kPostgres, false, "e2e crash postgres: kill -9 during*");
}

TEST_CASE("e2e crash sqlite: kill -9 inside a no-transaction migration leaves it dirty, force and a rerun recover") {
  crash_test(DriverKind::kSqlite, true, "e2e crash sqlite: kill -9 inside*");
}

TEST_CASE("e2e crash postgres: kill -9 inside a no-transaction migration leaves it dirty, force and a rerun recover") {
  crash_test(DriverKind::kPostgres, true, "e2e crash postgres: kill -9 inside*");
}

TEST_CASE("e2e crash: the after-kill check accepts whole migrations and dirty no-transaction prefixes only") {
  const CrashSet tx{10, 0}, some_no_tx{10, 5};
  auto at = [](std::optional<std::int64_t> v, bool dirty, Tables tables) {
    Snapshot s;
    s.version = v;
    s.dirty = dirty;
    s.version_rows = v || dirty ? 1 : 0;
    s.tables = std::move(tables);
    return s;
  };
  CHECK(judge(at(std::nullopt, false, {}), tx, Phase::kUp) == "");
  CHECK(judge(at(3, false, whole_up_to(3)), tx, Phase::kUp) == "");
  CHECK(judge(at(3, false, whole_up_to(3)), tx, Phase::kDown) == "");

  auto missing_row = whole_up_to(3);
  missing_row["t_3"].pop_back();
  CHECK(contains(judge(at(3, false, missing_row), tx, Phase::kUp), "t_3 holds [1,2,3], expected [1,2,3,4]"));
  auto unlogged = whole_up_to(3);
  unlogged["log"].pop_back();
  CHECK(contains(judge(at(3, false, unlogged), tx, Phase::kUp), "log holds [1,2]"));
  CHECK(contains(judge(at(3, false, whole_up_to(4)), tx, Phase::kUp), "t_4 [1,2,3,4] should not exist"));
  CHECK(contains(judge(at(2, false, whole_up_to(3)), tx, Phase::kDown), "t_3 [1,2,3,4] should not exist"));
  auto two_rows = at(3, false, whole_up_to(3));
  two_rows.version_rows = 2;
  CHECK(contains(judge(two_rows, tx, Phase::kUp), "holds 2 rows"));
  CHECK(contains(judge(at(11, false, whole_up_to(10)), tx, Phase::kUp), "not a migration"));

  // Dirty at a migration that runs in a transaction: never acceptable.
  CHECK(contains(judge(at(3, true, whole_up_to(3)), tx, Phase::kUp), "runs in a transaction"));
  CHECK(contains(judge(at(4, true, whole_up_to(4)), some_no_tx, Phase::kUp), "runs in a transaction"));
  // Up, dirty at no-transaction migration 5: any prefix of its statements.
  auto partial = whole_up_to(4);
  CHECK(judge(at(5, true, partial), some_no_tx, Phase::kUp) == "");
  partial["t_5"] = {"1", "2"};
  CHECK(judge(at(5, true, partial), some_no_tx, Phase::kUp) == "");
  CHECK(judge(at(5, true, whole_up_to(5)), some_no_tx, Phase::kUp) == "");
  partial["t_5"] = {"1", "3"};
  CHECK(contains(judge(at(5, true, partial), some_no_tx, Phase::kUp), "not a prefix"));
  partial["t_5"] = {"1", "2"};
  partial["log"].push_back("5");
  CHECK(contains(judge(at(5, true, partial), some_no_tx, Phase::kUp), "not a prefix"));
  auto beyond = whole_up_to(6);
  CHECK(contains(judge(at(5, true, beyond), some_no_tx, Phase::kUp), "t_6"));
  // Down, dirty at 4: migration 5's down (a no-transaction one) ran part way.
  auto unlogging = whole_up_to(5);
  CHECK(judge(at(4, true, unlogging), some_no_tx, Phase::kDown) == "");
  unlogging["log"] = whole_up_to(4)["log"];
  CHECK(judge(at(4, true, unlogging), some_no_tx, Phase::kDown) == "");
  CHECK(judge(at(4, true, whole_up_to(4)), some_no_tx, Phase::kDown) == "");
  auto dropped_first = whole_up_to(4);
  dropped_first["log"] = whole_up_to(5)["log"];
  CHECK(contains(judge(at(4, true, dropped_first), some_no_tx, Phase::kDown), "not a prefix"));
  CHECK(contains(judge(at(5, true, whole_up_to(5)), some_no_tx, Phase::kDown), "runs in a transaction"));
}
