#include "drivers/postgres/history_table.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <charconv>

#include "core/error.hpp"

namespace dbstep::drivers::pg {

namespace {

// An E'' literal: backslashes and quotes escaped, so it reads the same whatever
// standard_conforming_strings says.
std::string e_literal(std::string_view text) {
  std::string out = "E'";
  out.reserve(text.size() + 4);
  for (char c : text) {
    if (c == '\\' || c == '\'') out += c;
    out += c;
  }
  out += '\'';
  return out;
}

std::string hex_literal(std::string_view v) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "decode('";
  out.reserve(v.size() * 2 + 20);
  for (unsigned char c : v) {
    out += kHex[c >> 4];
    out += kHex[c & 0xf];
  }
  out += "', 'hex')";
  return out;
}

constexpr std::string_view kInsert =
    "INSERT INTO {} (id, version, identifier, direction, kind, checksum, down_sql, applied_at, "
    "duration_ms, applied_by, dbstep_version) VALUES ({}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {})";
// In a step's transaction: its start, and the time since at the append. date_part() is double
// precision like the column; extract() would compute a numeric first.
constexpr std::string_view kServerAppliedAt = "now()";
constexpr std::string_view kServerDuration =
    "date_part('epoch', clock_timestamp() - now()) * 1000";

}  // namespace

HistorySql::HistorySql(std::string quoted, std::string name, Literals literals)
    : quoted_(std::move(quoted)), name_(std::move(name)), literals_(std::move(literals)) {
  if (!literals_.text) literals_.text = e_literal;
  if (!literals_.bytes) literals_.bytes = hex_literal;
}

std::string HistorySql::literal(std::string_view text) const { return literals_.text(text); }

std::string HistorySql::optional_literal(const std::optional<std::string>& v) const {
  return v ? literal(*v) : "NULL";
}

std::string HistorySql::bytes_literal(const std::optional<std::string>& v) const {
  return v ? literals_.bytes(*v) : "NULL";
}

std::string HistorySql::create() const {
  return fmt::format(
      "CREATE TABLE IF NOT EXISTS {} (id bigint NOT NULL PRIMARY KEY, "
      "version bigint NOT NULL, identifier text NOT NULL, direction text NOT NULL, "
      "kind text NOT NULL, checksum text, down_sql bytea, applied_at timestamptz NOT NULL, "
      "duration_ms double precision NOT NULL, applied_by text NOT NULL, "
      "dbstep_version text NOT NULL)",
      quoted_);
}

std::string HistorySql::insert(const HistoryRow& row, const std::optional<Timing>& timing,
                               std::optional<std::int64_t> id) const {
  const std::string applied_at =
      timing ? literal(timing->applied_at) + "::timestamptz" : std::string(kServerAppliedAt);
  const std::string duration =
      timing ? fmt::format("{}", timing->duration_ms) : std::string(kServerDuration);
  // The next id is max + 1, not a sequence's: a sequence advances in a transaction that rolls
  // back, and a failed migration must leave the database exactly as it was. Writers hold the
  // migration lock, so two never pick the same id (and the primary key would refuse it).
  return fmt::format(fmt::runtime(kInsert), quoted_,
                     id ? std::to_string(*id) : "(" + next_id() + ")", row.version,
                     literal(row.identifier), fmt::format("'{}'", to_string(row.direction)),
                     fmt::format("'{}'", to_string(row.kind)), optional_literal(row.checksum),
                     bytes_literal(row.down_sql), applied_at, duration, literal(row.applied_by),
                     literal(row.dbstep_version));
}

std::string HistorySql::prepare_insert(std::string_view name) const {
  return fmt::format(
             "PREPARE {}(bigint, bigint, text, text, text, text, bytea, text, text) AS ", name) +
         fmt::format(fmt::runtime(kInsert), quoted_, "$1", "$2", "$3", "$4", "$5", "$6", "$7",
                     kServerAppliedAt, kServerDuration, "$8", "$9");
}

std::string HistorySql::execute_insert(std::string_view name, const HistoryRow& row,
                                       std::int64_t id) const {
  return fmt::format("EXECUTE {}({}, {}, {}, '{}', '{}', {}, {}, {}, {})", name, id, row.version,
                     literal(row.identifier), to_string(row.direction), to_string(row.kind),
                     optional_literal(row.checksum), bytes_literal(row.down_sql),
                     literal(row.applied_by), literal(row.dbstep_version));
}

std::string HistorySql::next_id() const {
  return fmt::format("SELECT coalesce(max(id), 0) + 1 FROM {}", quoted_);
}

std::string HistorySql::select() const {
  return fmt::format(
      "SELECT id, version, identifier, direction, kind, checksum, down_sql IS NOT NULL, "
      "to_char(applied_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), duration_ms, "
      "applied_by, dbstep_version FROM {} ORDER BY id",
      quoted_);
}

std::string HistorySql::select_marks() const {
  return fmt::format("SELECT id, version, direction, kind FROM {}", quoted_);
}

std::string HistorySql::select_downs(const std::vector<Version>& versions) const {
  return fmt::format(
      "SELECT DISTINCT ON (version) version, encode(down_sql, 'hex') FROM {} WHERE version IN "
      "({}) AND direction = 'up' AND kind NOT IN ('failed', 'forced') ORDER BY version, id DESC",
      quoted_, fmt::join(versions, ","));
}

std::string HistorySql::wrong_shape(const std::string& server_message) const {
  return fmt::format("the table {} is not dbstep's history table ({}); rename it, or name another "
                     "history table with x-history-table",
                     name_, server_message);
}

Error HistorySql::bad_row(std::string_view id, std::string_view what) const {
  return Error(ErrorCode::kDatabase,
               fmt::format("the history table {} has a row dbstep cannot read (id {}): {}; it "
                           "was edited by hand or written by another tool",
                           name_, id, what));
}

HistoryMark HistorySql::parse_mark(std::optional<std::string_view> id,
                                   std::optional<std::string_view> version,
                                   std::optional<std::string_view> direction,
                                   std::optional<std::string_view> kind) const {
  auto number = [](const std::optional<std::string_view>& v, auto& out) {
    if (!v) return false;
    auto [end, ec] = std::from_chars(v->data(), v->data() + v->size(), out);
    return ec == std::errc() && end == v->data() + v->size();
  };
  const std::string_view id_text = id ? *id : "?";
  HistoryMark mark;
  if (!number(id, mark.id)) throw bad_row(id_text, "id");
  std::int64_t v = -1;
  if (!number(version, v) || v < 0) {
    throw bad_row(id_text, fmt::format("version {}", version.value_or("NULL")));
  }
  mark.version = static_cast<Version>(v);
  const auto d = parse_direction(direction.value_or(""));
  if (!d) throw bad_row(id_text, fmt::format("direction \"{}\"", direction.value_or("")));
  mark.direction = *d;
  const auto k = parse_history_kind(kind.value_or(""));
  if (!k) throw bad_row(id_text, fmt::format("kind \"{}\"", kind.value_or("NULL")));
  mark.kind = *k;
  return mark;
}

HistoryRow HistorySql::parse_row(const std::vector<std::optional<std::string>>& c) const {
  if (c.size() != 11) throw bad_row(c.size() > 0 && c[0] ? *c[0] : "?", "wrong number of columns");
  const HistoryMark mark = parse_mark(c[0], c[1], c[3], c[4]);
  HistoryRow row;
  row.id = mark.id;
  row.version = mark.version;
  row.direction = mark.direction;
  row.kind = mark.kind;
  row.identifier = c[2].value_or("");
  row.checksum = c[5];
  row.down_stored = c[6].value_or("f") == "t";
  row.applied_at = c[7].value_or("");
  if (c[8]) {
    try {
      row.duration_ms = std::stod(*c[8]);
    } catch (const std::exception&) {
      throw bad_row(*c[0], "duration_ms");
    }
  }
  row.applied_by = c[9].value_or("");
  row.dbstep_version = c[10].value_or("");
  return row;
}

std::optional<std::string> from_hex(const std::string& text) {
  // bytea's hex output ("\x414243"), or encode(..., 'hex') ("414243"): the one bytea_output
  // cannot change.
  const std::size_t start = text.compare(0, 2, "\\x") == 0 ? 2 : 0;
  if ((text.size() - start) % 2 != 0) return std::nullopt;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  out.reserve((text.size() - start) / 2);
  for (std::size_t i = start; i < text.size(); i += 2) {
    const int hi = nibble(text[i]), lo = nibble(text[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out += static_cast<char>(hi * 16 + lo);
  }
  return out;
}

}  // namespace dbstep::drivers::pg
