#include "drivers/postgres/version_table.hpp"

#include <fmt/format.h>

#include <charconv>
#include <cstdint>
#include <limits>

#include "core/error.hpp"

namespace dbstep::drivers::pg {

std::string version_literal(const OptVersion& v) {
  if (!v) return "-1";
  if (*v > static_cast<Version>(std::numeric_limits<std::int64_t>::max())) {
    throw Error(
        ErrorCode::kInvalidArgument,
        fmt::format("version {} does not fit in the bigint version column of PostgreSQL", *v));
  }
  return std::to_string(*v);
}

std::string VersionTable::create() const {
  return fmt::format(
      "CREATE TABLE IF NOT EXISTS {} (version bigint not null primary key, dirty boolean not "
      "null)",
      quoted_);
}

std::string VersionTable::select() const {
  return fmt::format("SELECT version, dirty FROM {} LIMIT 1", quoted_);
}

std::string VersionTable::lock() const {
  return fmt::format("LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE", quoted_);
}

std::vector<std::string> VersionTable::write(const DbState& s) const {
  std::vector<std::string> out{fmt::format("DELETE FROM {}", quoted_)};
  if (s.version || s.dirty) {
    out.push_back(fmt::format("INSERT INTO {} (version, dirty) VALUES ({}, {})", quoted_,
                              version_literal(s.version), s.dirty ? "true" : "false"));
  }
  return out;
}

namespace {

// USING (SELECT): one source row, matched by the expected row or by nothing.
constexpr std::string_view kMerge =
    "MERGE INTO {} t USING (SELECT) s ON t.version = {} AND t.dirty = {} WHEN MATCHED THEN "
    "UPDATE SET version = {}, dirty = {} WHEN NOT MATCHED THEN INSERT (version) VALUES (NULL)";

const char* bool_literal(bool b) { return b ? "true" : "false"; }

}  // namespace

bool VersionTable::merges(const DbState& expected, const DbState& next) const {
  const bool row_before = expected.version || expected.dirty;
  const bool row_after = next.version || next.dirty;
  return merge_ && row_before && row_after;
}

std::string VersionTable::prepare_check_and_write(std::string_view name) const {
  return fmt::format("PREPARE {}(bigint, boolean, bigint, boolean) AS ", name) +
         fmt::format(fmt::runtime(kMerge), quoted_, "$1", "$2", "$3", "$4");
}

std::string VersionTable::execute_check_and_write(std::string_view name, const DbState& expected,
                                                  const DbState& next) const {
  if (!merges(expected, next)) return check_and_write(expected, next);
  return fmt::format("EXECUTE {}({}, {}, {}, {})", name, version_literal(expected.version),
                     bool_literal(expected.dirty), version_literal(next.version),
                     bool_literal(next.dirty));
}

std::string VersionTable::check_and_write(const DbState& expected, const DbState& next) const {
  const bool row_before = expected.version || expected.dirty;
  const bool row_after = next.version || next.dirty;
  if (merges(expected, next)) {
    return fmt::format(fmt::runtime(kMerge), quoted_, version_literal(expected.version),
                       bool_literal(expected.dirty), version_literal(next.version),
                       bool_literal(next.dirty));
  }
  // 1 / 0 unless the rows deleted are exactly the expected state: none for {none, clean}, else
  // one or more rows all equal to it (state() reads the first).
  const std::string same =
      !row_before
          ? std::string("count(*) = 0")
          : fmt::format("count(*) >= 1 AND bool_and(version = {} AND dirty = {})",
                        version_literal(expected.version), expected.dirty ? "true" : "false");
  const std::string check = fmt::format("1 / (SELECT ({})::int FROM old) = 1", same);
  if (!row_after) {
    return fmt::format("WITH old AS (DELETE FROM {} RETURNING version, dirty) SELECT {}",
                       quoted_, check);
  }
  // The check in the WHERE clause, so the planner cannot leave it out.
  return fmt::format(
      "WITH old AS (DELETE FROM {} RETURNING version, dirty) INSERT INTO {} (version, dirty) "
      "SELECT {}, {} WHERE {}",
      quoted_, quoted_, version_literal(next.version), next.dirty ? "true" : "false", check);
}

DbState VersionTable::parse(const pqxx::result& r) const {
  DbState s;
  if (r.empty()) return s;
  const std::string v = r[0][0].c_str();
  s.dirty = r[0][1].as<bool>();
  std::int64_t n = 0;
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (ec != std::errc() || end != v.data() + v.size() || n < -1) {
    throw Error(ErrorCode::kDatabase,
                fmt::format("{} holds version {}, which is not a version (expected -1 or more)",
                            quoted_, v));
  }
  if (n >= 0) s.version = static_cast<Version>(n);
  return s;
}

}  // namespace dbstep::drivers::pg
