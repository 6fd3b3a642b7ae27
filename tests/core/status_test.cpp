// Checksums and status (issue 10): the pure parts, without a database. compute_status() is fed an
// index, a version-table state and history rows that make every state a migration can be in.

#include <doctest/doctest.h>

#include <map>
#include <random>
#include <string>
#include <vector>

#include "core/checksum.hpp"
#include "core/history.hpp"
#include "core/migration.hpp"
#include "core/status.hpp"

namespace {

using namespace dbstep;

HistoryRow row(std::int64_t id, Version v, Direction d, HistoryKind k,
               std::optional<std::string> checksum = std::nullopt) {
  HistoryRow r;
  r.id = id;
  r.version = v;
  r.identifier = "m" + std::to_string(v);
  r.direction = d;
  r.kind = k;
  r.checksum = std::move(checksum);
  return r;
}

const VersionStatus& find(const StatusReport& r, Version v) {
  for (const auto& s : r.versions) {
    if (s.version == v) return s;
  }
  FAIL("version " << v << " not in the report");
  return r.versions.front();
}

}  // namespace

TEST_CASE("checksum: SHA-256 of the file, CRLF and a leading BOM do not count as edits") {
  // sha256("CREATE TABLE a (x int);\n")
  const std::string lf = "CREATE TABLE a (x int);\n";
  CHECK(migration_checksum("") ==
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(migration_checksum(lf).size() == 64);
  CHECK(migration_checksum("CREATE TABLE a (x int);\r\n") == migration_checksum(lf));
  CHECK(migration_checksum("\xEF\xBB\xBF" "CREATE TABLE a (x int);\r\n") == migration_checksum(lf));
  // A lone CR, a BOM elsewhere, or any other byte is an edit.
  CHECK(migration_checksum("CREATE TABLE a (x int);\r") != migration_checksum("CREATE TABLE a (x int);\n"));
  CHECK(migration_checksum("CREATE TABLE a (x int); \n") != migration_checksum(lf));
  CHECK(migration_checksum("\n\xEF\xBB\xBF") != migration_checksum("\n"));
}

TEST_CASE("history: kinds and time stamps") {
  for (auto k : {HistoryKind::kApplied, HistoryKind::kFailed, HistoryKind::kBaseline,
                 HistoryKind::kForced, HistoryKind::kRepaired}) {
    CHECK(parse_history_kind(to_string(k)) == k);
  }
  CHECK_FALSE(parse_history_kind("Applied").has_value());
  CHECK(format_utc(std::chrono::system_clock::time_point(std::chrono::milliseconds(1764584400123))) ==
        "2025-12-01T10:20:00.123Z");
  CHECK(default_history_table("schema_migrations") == "schema_migrations_history");
  CHECK(current_user_at_host().find('@') != std::string::npos);
}

TEST_CASE("status: every state on one fixture") {
  // Source: 1..8 with up files (6 has only a down file), 9 is gone from the source.
  const auto index = MigrationIndex::build(
      {"1_a.up.sql", "2_b.up.sql", "3_c.up.sql", "4_d.up.sql", "5_e.up.sql", "6_f.down.sql",
       "7_g.up.sql", "8_h.up.sql", "10_j.up.sql"},
      "test");
  std::map<Version, std::string> files = {{1, "c1"}, {2, "c2-edited"}, {3, "c3"}, {4, "c4"},
                                          {5, "c5"}, {7, "c7"}, {8, "c8"}, {10, "c10"}};
  // History began at 3 (1 and 2 ran before it); 4 was merged later (no row, below current); 9
  // ran and its file is gone; 7 ran, was rolled back and ran again; current: 9.
  std::vector<HistoryRow> h = {
      row(1, 3, Direction::kUp, HistoryKind::kApplied, "c3"),
      row(2, 5, Direction::kUp, HistoryKind::kApplied, "c5"),
      row(3, 6, Direction::kUp, HistoryKind::kApplied),
      row(4, 7, Direction::kUp, HistoryKind::kApplied, "c7-old"),
      row(5, 7, Direction::kDown, HistoryKind::kApplied),
      row(6, 7, Direction::kUp, HistoryKind::kApplied, "c7"),
      row(7, 8, Direction::kUp, HistoryKind::kApplied, "c8"),
      row(8, 9, Direction::kUp, HistoryKind::kApplied, "c9"),
  };
  int checksums_read = 0;
  auto report = compute_status(index, DbState{9, false}, h, true, [&](Version v) {
    ++checksums_read;
    return files.at(v);
  });
  CHECK(find(report, 1).state == MigrationState::kApplied);
  CHECK(find(report, 1).before_history);
  CHECK(find(report, 2).before_history);
  CHECK_FALSE(find(report, 2).edited);  // no checksum recorded: an edit cannot be told
  CHECK(find(report, 3).state == MigrationState::kApplied);
  CHECK_FALSE(find(report, 3).before_history);
  CHECK_FALSE(find(report, 3).edited);
  CHECK(find(report, 4).state == MigrationState::kOutOfOrder);
  CHECK(find(report, 5).state == MigrationState::kApplied);
  CHECK(find(report, 6).state == MigrationState::kApplied);  // only a down file: nothing ran up
  CHECK_FALSE(find(report, 6).edited);
  CHECK(find(report, 7).state == MigrationState::kApplied);
  CHECK_FALSE(find(report, 7).edited);  // the latest run's checksum counts
  CHECK(find(report, 9).state == MigrationState::kApplied);
  CHECK(find(report, 9).file_missing);
  CHECK(find(report, 9).identifier == "m9");
  CHECK(find(report, 10).state == MigrationState::kPending);
  CHECK(report.summary.applied == 8);
  CHECK(report.summary.pending == 1);
  CHECK(report.summary.out_of_order == 1);
  CHECK(report.summary.file_missing == 1);
  CHECK(report.summary.before_history == 2);
  CHECK(checksums_read == 6);  // 1, 2, 3, 5, 7, 8: applied versions with an up file

  // An edit after the run.
  files[8] = "c8-edited";
  report = compute_status(index, DbState{9, false}, h, true, [&](Version v) { return files.at(v); });
  CHECK(find(report, 8).edited);
  CHECK(report.summary.edited == 1);
  // A repair accepts the new checksum.
  h.push_back(row(9, 8, Direction::kUp, HistoryKind::kRepaired, "c8-edited"));
  report = compute_status(index, DbState{9, false}, h, true, [&](Version v) { return files.at(v); });
  CHECK_FALSE(find(report, 8).edited);

  // Dirty: the current version.
  report = compute_status(index, DbState{8, true}, h, true, [&](Version v) { return files.at(v); });
  CHECK(find(report, 8).state == MigrationState::kDirty);
  CHECK(report.summary.dirty == 1);
}

TEST_CASE("status: without history (golang-migrate's database) and after force or baseline") {
  const auto index = MigrationIndex::build({"1_a.up.sql", "2_b.up.sql", "3_c.up.sql"}, "test");
  auto sum = [](Version) { return std::string("x"); };
  auto report = compute_status(index, DbState{2, false}, {}, false, sum);
  CHECK(find(report, 1).state == MigrationState::kApplied);
  CHECK(find(report, 1).before_history);
  CHECK(find(report, 2).before_history);
  CHECK(find(report, 3).state == MigrationState::kPending);
  CHECK_FALSE(report.history_table);

  // Nothing applied: everything pending, history or not.
  report = compute_status(index, DbState{}, {}, false, sum);
  CHECK(report.summary.pending == 3);

  // A baseline at 2 (rows for 1 and 2), then 3 applied.
  std::vector<HistoryRow> h = {row(1, 1, Direction::kUp, HistoryKind::kBaseline, "x"),
                               row(2, 2, Direction::kUp, HistoryKind::kBaseline, "x"),
                               row(3, 3, Direction::kUp, HistoryKind::kApplied, "x")};
  report = compute_status(index, DbState{3, false}, h, true, sum);
  CHECK(report.summary.applied == 3);
  CHECK(report.summary.before_history == 0);

  // force 3 after history of 1 only: 2 counts as applied (vouched for), not out of order.
  h = {row(1, 1, Direction::kUp, HistoryKind::kApplied, "x"),
       row(2, 3, Direction::kUp, HistoryKind::kForced)};
  report = compute_status(index, DbState{3, false}, h, true, sum);
  CHECK(find(report, 2).state == MigrationState::kApplied);
  CHECK(find(report, 2).before_history);
  CHECK(find(report, 3).state == MigrationState::kApplied);
}

TEST_CASE("status: out_of_order_versions() finds what compute_status() calls out of order") {
  // The up-to-date path of every run going up reads only the history's marks; it must agree with
  // the report. Random histories over a source with gaps, files missing and every kind of row.
  const auto index = MigrationIndex::build(
      {"1_a.up.sql", "2_b.up.sql", "3_c.up.sql", "5_e.up.sql", "6_f.down.sql", "7_g.up.sql",
       "9_i.up.sql"},
      "test");
  const Direction directions[] = {Direction::kUp, Direction::kDown};
  const HistoryKind kinds[] = {HistoryKind::kApplied, HistoryKind::kFailed, HistoryKind::kBaseline,
                               HistoryKind::kForced, HistoryKind::kRepaired};
  std::mt19937 random(20261201);
  int with_out_of_order = 0;
  for (int round = 0; round < 3000; ++round) {
    std::vector<HistoryRow> h;
    const int rows = static_cast<int>(random() % 10);
    for (int i = 0; i < rows; ++i) {
      // Mostly applied ups; ids written out of order, as a driver may return them.
      const bool plain = random() % 3 != 0;
      h.push_back(row(static_cast<std::int64_t>(random() % 1000), 1 + random() % 10,
                      plain ? Direction::kUp : directions[random() % 2],
                      plain ? HistoryKind::kApplied : kinds[random() % 5]));
      h.back().id = h.back().id * 16 + i;  // unique
    }
    const OptVersion current = random() % 8 == 0 ? OptVersion{} : OptVersion{1 + random() % 10};
    const DbState state{current, current && random() % 6 == 0};
    const auto report =
        compute_status(index, state, h, true, [](Version) { return std::string("x"); });
    std::vector<Version> expected;
    for (const auto& s : report.versions) {
      if (s.state == MigrationState::kOutOfOrder) expected.push_back(s.version);
    }
    std::vector<HistoryMark> marks;
    for (const auto& r : h) marks.push_back(HistoryMark{r.id, r.version, r.direction, r.kind});
    const auto found = out_of_order_versions(index, state, marks);
    CAPTURE(round);
    CHECK(found == expected);
    if (!expected.empty()) ++with_out_of_order;
  }
  CHECK(with_out_of_order > 300);  // the random histories do make the case
}
