// dbstep_bench_templates: how long dbstep::testing takes to hand a test a fresh database at the
// latest version of a migration set, from a template (SqliteTestDatabase::from_template,
// PostgresTestDatabase::from_template) and from scratch (empty() + migrate_up(), what a suite
// without templates does), side by side. Never a test: it prints a Markdown table (bench/README.md
// keeps a run) and exits non-zero only when something failed.
//
//   dbstep_bench_templates --migrations DIR [--runs 50] [--pg-url URL] [--folder DIR]
//
// Each figure is the median (and the 90th percentile) over --runs databases; the handle is
// dropped between runs and its drop is timed apart. The template is built once before the timed
// runs (its build time is printed too), as in a test suite where the first test pays for it.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <pqxx/connection>
#include <string>
#include <vector>

#include "testing/postgres_test_database.hpp"
#include "testing/sqlite_test_database.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using dbstep::testing::MigrationSet;
using dbstep::testing::Options;
using dbstep::testing::PostgresTestDatabase;
using dbstep::testing::SqliteTestDatabase;

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

struct Figures {
  double median = 0;
  double p90 = 0;
  double drop_median = 0;
};

Figures summarise(std::vector<double> make, std::vector<double> drop) {
  std::sort(make.begin(), make.end());
  std::sort(drop.begin(), drop.end());
  return {make[make.size() / 2], make[std::min(make.size() - 1, make.size() * 9 / 10)],
          drop[drop.size() / 2]};
}

// Times `runs` calls of make() (which returns a handle) and the handle's destruction apart.
template <typename Make>
Figures measure(int runs, Make make) {
  std::vector<double> made, dropped;
  for (int i = 0; i < runs; ++i) {
    auto start = Clock::now();
    std::optional<decltype(make())> db(make());
    made.push_back(ms_since(start));
    start = Clock::now();
    db.reset();
    dropped.push_back(ms_since(start));
  }
  return summarise(made, dropped);
}

void row(const std::string& backend, const std::string& how, const Figures& f,
         const std::string& target) {
  fmt::print("| {} | {} | {:.2f} ms | {:.2f} ms | {:.2f} ms | {} |\n", backend, how, f.median,
             f.p90, f.drop_median, target);
}

}  // namespace

int main(int argc, char** argv) {
  std::string migrations, pg_url, folder;
  int runs = 50;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string key = argv[i];
    if (key == "--migrations")
      migrations = argv[i + 1];
    else if (key == "--runs")
      runs = std::max(1, std::atoi(argv[i + 1]));
    else if (key == "--pg-url")
      pg_url = argv[i + 1];
    else if (key == "--folder")
      folder = argv[i + 1];
    else {
      std::cerr << "dbstep_bench_templates: unknown option " << key << "\n";
      return 2;
    }
  }
  if (migrations.empty()) {
    std::cerr << "usage: dbstep_bench_templates --migrations DIR [--runs N] [--pg-url URL] "
                 "[--folder DIR]\n";
    return 2;
  }
  try {
    auto set = MigrationSet::folder(migrations);
    Options options;
    if (!folder.empty()) {
      options.folder = folder;
      options.template_folder = folder + "/templates";
    }
    const int scratch_runs = std::max(1, runs / 5);

    auto start = Clock::now();
    SqliteTestDatabase::template_file(set, set.latest(), options);
    double sqlite_build = ms_since(start);
    auto sqlite_tpl =
        measure(runs, [&] { return SqliteTestDatabase::from_template(set, options); });
    auto sqlite_scratch = measure(scratch_runs, [&] {
      auto db = SqliteTestDatabase::empty(set, options);
      db.migrate_up();
      return db;
    });

    std::optional<Figures> pg_tpl, pg_scratch, pg_connect;
    double pg_build = 0;
    if (!pg_url.empty()) {
      start = Clock::now();
      PostgresTestDatabase::template_database(set, pg_url, set.latest(), options);
      pg_build = ms_since(start);
      // db() opens the test's connection: part of "ready to use".
      pg_tpl = measure(runs, [&] {
        auto db = PostgresTestDatabase::from_template(set, pg_url, options);
        db.db();
        return db;
      });
      // The floor of any handout: the test's own connection, to a database that exists.
      pg_connect = measure(runs, [&] { return std::make_unique<pqxx::connection>(pg_url); });
      pg_scratch = measure(scratch_runs, [&] {
        auto db = PostgresTestDatabase::empty(set, pg_url, options);
        db.migrate_up();
        db.db();
        return db;
      });
    }

    fmt::print(
        "A fresh test database at the latest version of {} ({} migrations): median and "
        "90th percentile of {} runs ({} from scratch); drop timed apart\n\n",
        migrations, set.latest(), runs, scratch_runs);
    fmt::print("| backend | how | median | p90 | drop | target |\n|---|---|---|---|---|---|\n");
    row("SQLite", "from_template()", sqlite_tpl, "≤ 2 ms");
    row("SQLite", "empty() + migrate_up()", sqlite_scratch, "");
    if (pg_tpl) {
      row("PostgreSQL", "from_template() + db()", *pg_tpl, "≤ 15 ms");
      row("PostgreSQL", "empty() + migrate_up() + db()", *pg_scratch, "");
      row("PostgreSQL", "floor: one new connection (pqxx)", *pg_connect, "");
    }
    fmt::print("\nFrom scratch / from template: SQLite {:.1f}x",
               sqlite_scratch.median / sqlite_tpl.median);
    if (pg_tpl) fmt::print(", PostgreSQL {:.1f}x", pg_scratch->median / pg_tpl->median);
    fmt::print(". Building the template once: SQLite {:.1f} ms{}.\n", sqlite_build,
               pg_tpl ? fmt::format(", PostgreSQL {:.1f} ms", pg_build) : std::string());
    if (!pg_tpl) fmt::print("PostgreSQL: not measured (no --pg-url).\n");
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "dbstep_bench_templates: " << e.what() << "\n";
    return 1;
  }
}
