#include "drivers/postgres/history_reader.hpp"

#include <fmt/format.h>

#include <cstdint>
#include <limits>
#include <utility>

namespace dbstep::drivers::pg {

namespace {

// The rows of a history query, `doing`; nullopt when there is no such table (a database without
// history). A failure of another kind is thrown: shape_error(), or Connection::fail().
std::optional<pqxx::result> rows_of(Connection& conn, const HistorySql& history,
                                    Connection::QueryResult read, std::string_view doing) {
  auto& [r, failed] = read;
  if (!failed) return std::move(r);
  conn.rollback_quietly();
  if (is_missing_table(failed->sqlstate)) return std::nullopt;
  if (is_wrong_shape(failed->sqlstate)) throw shape_error(conn, history, doing, *failed);
  conn.fail(doing, *failed);
}

// Rows read with `sql`, in autocommit outside any transaction: a failure leaves nothing open,
// and reading never creates the table.
std::optional<pqxx::result> read(Connection& conn, const HistorySql& history,
                                 const std::string& sql, std::string_view doing) {
  return rows_of(conn, history, conn.try_exec(sql), doing);
}

std::string reading(const HistorySql& history) {
  return fmt::format("reading the history from {}", history.name());
}

std::optional<std::string_view> text(const pqxx::field& f) {
  if (f.is_null()) return std::nullopt;
  return std::string_view(f.c_str(), f.size());
}

}  // namespace

bool is_wrong_shape(std::string_view sqlstate) {
  return sqlstate == "42703" || sqlstate == "42883" || sqlstate == "42804" || sqlstate == "23502" ||
         sqlstate == "22P02";
}

bool is_missing_table(std::string_view sqlstate) {
  return sqlstate == "42P01" || sqlstate == "3F000";  // no table, or no schema for a quoted name
}

Error shape_error(const Connection& conn, const HistorySql& history, std::string_view doing,
                  const SqlFailure& f) {
  std::string why = f.message;
  if (!f.sqlstate.empty()) why += fmt::format(" (SQLSTATE {})", f.sqlstate);
  Error e(ErrorCode::kDatabase, conn.scrub(fmt::format("{} on {} failed: {}", doing,
                                                       conn.described(), history.wrong_shape(why))));
  e.sqlstate = f.sqlstate;
  e.detail = conn.scrub(f.verbose);
  return e;
}

std::optional<std::vector<HistoryRow>> read_history_rows(Connection& conn,
                                                         const HistorySql& history) {
  auto r = read(conn, history, history.select(), reading(history));
  if (!r) return std::nullopt;
  std::vector<HistoryRow> rows;
  rows.reserve(r->size());
  std::vector<std::optional<std::string>> values(static_cast<std::size_t>(r->columns()));
  for (const auto& row : *r) {
    for (std::size_t c = 0; c < values.size(); ++c) {
      const auto f = row[static_cast<int>(c)];
      if (f.is_null()) {
        values[c].reset();
      } else {
        values[c].emplace(f.c_str(), f.size());
      }
    }
    rows.push_back(history.parse_row(values));
  }
  return rows;
}

std::optional<std::vector<HistoryMark>> read_history_marks(Connection& conn,
                                                           const HistorySql& history) {
  return history_marks_of(conn, history, conn.try_exec(history.select_marks()));
}

std::optional<std::vector<HistoryMark>> history_marks_of(Connection& conn,
                                                         const HistorySql& history,
                                                         Connection::QueryResult read) {
  auto r = rows_of(conn, history, std::move(read), reading(history));
  if (!r) return std::nullopt;
  std::vector<HistoryMark> marks;
  marks.reserve(r->size());
  for (const auto& row : *r) {
    marks.push_back(history.parse_mark(text(row[0]), text(row[1]), text(row[2]), text(row[3])));
  }
  return marks;
}

std::map<Version, std::string> read_stored_downs(Connection& conn, const HistorySql& history,
                                                 const std::vector<Version>& versions) {
  std::map<Version, std::string> found;
  std::vector<Version> storable;  // the history's version column is a bigint
  for (Version v : versions) {
    if (v <= static_cast<Version>(std::numeric_limits<std::int64_t>::max())) storable.push_back(v);
  }
  if (storable.empty()) return found;
  const std::string doing = fmt::format("reading the stored down SQL of {} migration(s) from {}",
                                        storable.size(), history.name());
  auto r = read(conn, history, history.select_downs(storable), doing);
  if (!r) return found;
  for (const auto& row : *r) {
    if (row[1].is_null()) continue;
    const auto version = row[0].as<std::int64_t>();
    auto bytes = from_hex(std::string(row[1].c_str(), row[1].size()));
    if (!bytes) {
      throw Error(ErrorCode::kDatabase, fmt::format("{} on {}: the server did not send it as hex",
                                                    doing, conn.described()));
    }
    found.emplace(static_cast<Version>(version), std::move(*bytes));
  }
  return found;
}

}  // namespace dbstep::drivers::pg
