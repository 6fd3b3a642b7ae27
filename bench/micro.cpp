// dbstep's micro-benchmarks (Google Benchmark): the costs a program pays on every start when it
// migrates its database through the library (examples/storage), measured without process
// start-up, and the cost of reading a large migration set.
//
//   UpToDate/*         the up-to-date check on an open connection, 1,000 migrations applied:
//                      Migrator::needs_migration() and Migrator::up() with nothing pending,
//                      without and with an observer (_observed: up() then also reads the
//                      history's marks to report migrations pending below the current version)
//                      (SQLite file on disk; PostgreSQL too when DBSTEP_BENCH_PG_URL is set).
//   ListParsePlan/*    10,000 migration files (5,000 up/down pairs): Source::list(),
//                      MigrationIndex::build() and plan_up() from none, from a directory and from
//                      the embedded source; and each of the three phases alone (parse twice:
//                      from a listing it copies, and as a Migrator does, moving the names out
//                      of a temporary listing: parse_moved).
//
// The folders are generated into the build tree by bench/CMakeLists.txt (bench/gen_migrations.py);
// the 10,000-file folder is also compiled into this binary with dbstep_embed_migrations().
// Not a test: nothing here passes or fails on time.

#include <benchmark/benchmark.h>

#include <cstdlib>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>
#include <unistd.h>

#include "core/migration.hpp"
#include "core/migrator.hpp"
#include "core/plan.hpp"
#include "core/url.hpp"
#include "dbstep_embedded/bench10k.hpp"
#include "drivers/sqlite/sqlite_driver.hpp"
#include "sources/dir/dir_source.hpp"
#include "sources/embedded/embedded_source.hpp"
#ifdef DBSTEP_BENCH_HAVE_POSTGRES
#include "drivers/postgres/postgres_driver.hpp"
#endif

namespace {

namespace fs = std::filesystem;

const char* const kDir1k = DBSTEP_BENCH_DIR_1K;    // 1,000 pairs: 2,000 files
const char* const kDir10k = DBSTEP_BENCH_DIR_10K;  // 5,000 pairs: 10,000 files

// An observer that keeps the notices (a program that logs them): with one, up() also looks for
// migrations pending below the current version, in the history, to report them.
struct NoticeCounter : dbstep::Observer {
  std::size_t notices = 0;
  void on_notice(const std::string&) override { ++notices; }
};

// A Migrator over the 1,000-migration folder, its database migrated to the latest version once
// before the timed loops, and a second one on its own connection with an observer. SQLite's file
// lives in a temporary folder on disk.
struct UpToDate {
  std::optional<dbstep::Migrator> migrator;
  std::optional<dbstep::Migrator> observed;
  NoticeCounter counter;
  fs::path tmp;

  explicit UpToDate(const std::function<std::unique_ptr<dbstep::Driver>()>& open) {
    const auto source = [] {
      return dbstep::sources::open_directory(
          dbstep::Url::parse(std::string("file://") + kDir1k));
    };
    migrator.emplace(source(), open());
    dbstep::Result r = migrator->up();
    if (!r.ok()) throw *r.error;
    if (migrator->needs_migration()) throw std::runtime_error("still needs migration after up()");
    dbstep::MigratorOptions options;
    options.observer = &counter;
    observed.emplace(source(), open(), options);
  }
};

bool sqlite_made = false;

UpToDate& sqlite_fixture() {
  static UpToDate* f = [] {
    sqlite_made = true;
    char tmpl[] = "/tmp/dbstep-micro.XXXXXX";  // /tmp is on ext4 here (bench/run.sh checks)
    const char* dir = mkdtemp(tmpl);
    if (!dir) throw std::runtime_error("mkdtemp failed");
    const std::string url = std::string("sqlite://") + dir + "/micro.db";
    auto* fx = new UpToDate([&] { return dbstep::drivers::open_sqlite(dbstep::Url::parse(url)); });
    fx->tmp = dir;
    return fx;
  }();
  return *f;
}

void BM_NeedsMigration(benchmark::State& state, UpToDate& (*fixture)()) {
  UpToDate& f = fixture();
  for (auto _ : state) {
    bool needs = f.migrator->needs_migration();
    benchmark::DoNotOptimize(needs);
  }
}

// `observed`: through the Migrator with an observer, which also reads the history's marks.
void BM_UpNothingPending(benchmark::State& state, UpToDate& (*fixture)(), bool observed) {
  UpToDate& f = fixture();
  dbstep::Migrator& m = observed ? *f.observed : *f.migrator;
  for (auto _ : state) {
    dbstep::Result r = m.up();
    if (!r.ok() || !r.steps.empty()) {
      state.SkipWithError("up() failed or found work");
      break;
    }
    benchmark::DoNotOptimize(r);
  }
}

std::unique_ptr<dbstep::Source> dir_source(const char* dir) {
  return dbstep::sources::open_directory(dbstep::Url::parse(std::string("file://") + dir));
}

std::unique_ptr<dbstep::Source> dir10k_source() { return dir_source(kDir10k); }

std::unique_ptr<dbstep::Source> embedded_source() {
  return dbstep::sources::open_embedded(dbstep_embedded::bench10k());
}

// list + parse + plan, as Migrator's constructor and up() do them, from a fresh source each time
// (a directory listing is not cached by dbstep; the kernel's dentry cache is warm).
template <typename MakeSource>
void BM_ListParsePlan(benchmark::State& state, MakeSource make) {
  std::size_t steps = 0;
  for (auto _ : state) {
    auto source = make();
    const std::string where = source->describe();
    auto index = dbstep::MigrationIndex::build(source->list(), where);
    auto plan = dbstep::plan_up(index, std::nullopt, std::nullopt, where);
    steps = plan.steps.size();
    benchmark::DoNotOptimize(plan);
  }
  if (steps != 5000) state.SkipWithError("expected 5,000 planned steps");
  state.counters["files"] = 10000;
}

void BM_ListOnly(benchmark::State& state) {
  for (auto _ : state) {
    auto names = dir_source(kDir10k)->list();
    benchmark::DoNotOptimize(names);
  }
}

void BM_ParseOnly(benchmark::State& state) {
  const auto names = dir_source(kDir10k)->list();
  for (auto _ : state) {
    auto index = dbstep::MigrationIndex::build(names, "bench");
    benchmark::DoNotOptimize(index);
  }
}

// build() as a Migrator calls it: on the listing as a temporary, whose names move into the
// index (the copy each iteration starts from is not timed).
void BM_ParseMoved(benchmark::State& state) {
  const auto names = dir_source(kDir10k)->list();
  for (auto _ : state) {
    state.PauseTiming();
    std::vector<std::string> listing = names;
    state.ResumeTiming();
    auto index = dbstep::MigrationIndex::build(std::move(listing), "bench");
    benchmark::DoNotOptimize(index);
  }
}

void BM_PlanOnly(benchmark::State& state) {
  const auto index = dbstep::MigrationIndex::build(dir_source(kDir10k)->list(), "bench");
  const std::string where = "bench";
  for (auto _ : state) {
    auto plan = dbstep::plan_up(index, std::nullopt, std::nullopt, where);
    benchmark::DoNotOptimize(plan);
  }
}

// The whole open: Migrator's constructor lists and indexes, then needs_migration() on an empty
// in-memory database plans nothing but compares versions.
void BM_MigratorOpen10k(benchmark::State& state) {
  for (auto _ : state) {
    dbstep::Migrator m(dir_source(kDir10k),
                       dbstep::drivers::open_sqlite(dbstep::Url::parse("sqlite://:memory:")));
    benchmark::DoNotOptimize(m.index().size());
  }
}

}  // namespace

int main(int argc, char** argv) {
  using benchmark::RegisterBenchmark;
  using benchmark::kMicrosecond;
  using benchmark::kMillisecond;
  RegisterBenchmark("UpToDate/sqlite/needs_migration/1000", BM_NeedsMigration, &sqlite_fixture)
      ->Unit(kMicrosecond);
  RegisterBenchmark("UpToDate/sqlite/up_nothing_pending/1000", BM_UpNothingPending,
                    &sqlite_fixture, false)
      ->Unit(kMicrosecond);
  RegisterBenchmark("UpToDate/sqlite/up_nothing_pending_observed/1000", BM_UpNothingPending,
                    &sqlite_fixture, true)
      ->Unit(kMicrosecond);
#ifdef DBSTEP_BENCH_HAVE_POSTGRES
  static UpToDate* pg = nullptr;
  if (const char* url = std::getenv("DBSTEP_BENCH_PG_URL"); url && *url) {
    static std::string pg_url = url;
    auto fixture = +[]() -> UpToDate& {
      if (!pg) {
        pg = new UpToDate([] { return dbstep::drivers::open_postgres(dbstep::Url::parse(pg_url)); });
      }
      return *pg;
    };
    RegisterBenchmark("UpToDate/postgres/needs_migration/1000", BM_NeedsMigration, fixture)
        ->Unit(kMicrosecond);
    RegisterBenchmark("UpToDate/postgres/up_nothing_pending/1000", BM_UpNothingPending, fixture,
                      false)
        ->Unit(kMicrosecond);
    RegisterBenchmark("UpToDate/postgres/up_nothing_pending_observed/1000", BM_UpNothingPending,
                      fixture, true)
        ->Unit(kMicrosecond);
  }
#endif
  RegisterBenchmark("ListParsePlan/dir/10000files", BM_ListParsePlan<decltype(&dir10k_source)>,
                    &dir10k_source)
      ->Unit(kMillisecond);
  RegisterBenchmark("ListParsePlan/embedded/10000files",
                    BM_ListParsePlan<decltype(&embedded_source)>, &embedded_source)
      ->Unit(kMillisecond);
  RegisterBenchmark("ListParsePlan/phase/list_dir/10000files", BM_ListOnly)->Unit(kMillisecond);
  RegisterBenchmark("ListParsePlan/phase/parse/10000files", BM_ParseOnly)->Unit(kMillisecond);
  RegisterBenchmark("ListParsePlan/phase/parse_moved/10000files", BM_ParseMoved)
      ->Unit(kMillisecond);
  RegisterBenchmark("ListParsePlan/phase/plan/10000files", BM_PlanOnly)->Unit(kMillisecond);
  RegisterBenchmark("ListParsePlan/migrator_open/dir/10000files", BM_MigratorOpen10k)
      ->Unit(kMillisecond);

  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  // The SQLite fixture's folder, if a benchmark made it (the Migrator closes its file first).
  if (sqlite_made) {
    fs::path tmp = sqlite_fixture().tmp;
    sqlite_fixture().migrator.reset();
    std::error_code ec;
    fs::remove_all(tmp, ec);
  }
  return 0;
}
