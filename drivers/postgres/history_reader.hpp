#pragma once
// Reading the history table (core/history.hpp) on the driver's connection: its rows, their marks
// (id, version, direction, kind) and the stored down SQL, each in one query, in autocommit outside
// any transaction. Reading never creates the table: a database without one reads as nullopt (or
// no stored SQL). A table of that name in another shape is Error(kDatabase) naming it
// (shape_error()), as is a malformed row (HistorySql::parse_row / parse_mark).

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"
#include "core/history.hpp"
#include "drivers/postgres/connection.hpp"
#include "drivers/postgres/history_table.hpp"

namespace dbstep::drivers::pg {

// Whether a failed history query says the table is not dbstep's shape: undefined column or
// function, datatype mismatch, a NOT NULL column dbstep does not fill, a value the column's type
// cannot take.
bool is_wrong_shape(std::string_view sqlstate);
// Whether a failed query says its table (or the schema of a quoted name) does not exist.
bool is_missing_table(std::string_view sqlstate);

// The error for a history query, `doing` on `conn`, that failed because the table has another
// shape.
Error shape_error(const Connection& conn, const HistorySql& history, std::string_view doing,
                  const SqlFailure& f);

std::optional<std::vector<HistoryRow>> read_history_rows(Connection& conn,
                                                         const HistorySql& history);
std::optional<std::vector<HistoryMark>> read_history_marks(Connection& conn,
                                                           const HistorySql& history);
// read_history_marks() of HistorySql::select_marks() sent already, with others: its `read`.
std::optional<std::vector<HistoryMark>> history_marks_of(Connection& conn,
                                                         const HistorySql& history,
                                                         Connection::QueryResult read);
// The stored down SQL of each of `versions` that has one (Driver::stored_downs()).
std::map<Version, std::string> read_stored_downs(Connection& conn, const HistorySql& history,
                                                 const std::vector<Version>& versions);

}  // namespace dbstep::drivers::pg
