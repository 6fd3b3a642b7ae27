#pragma once
// The history table on PostgreSQL (core/history.hpp): its shape and the SQL that appends and
// reads its rows. Pure text in and out, so the driver can send an append in the same pipeline
// (and transaction) as the step it records.
//
//   CREATE TABLE "<name>" (id bigint NOT NULL PRIMARY KEY,
//     version bigint NOT NULL, identifier text NOT NULL, direction text NOT NULL,
//     kind text NOT NULL, checksum text, down_sql bytea, applied_at timestamptz NOT NULL,
//     duration_ms double precision NOT NULL, applied_by text NOT NULL,
//     dbstep_version text NOT NULL)
//
// id is the previous row's + 1 (no sequence: one would move in a transaction that rolls back, and
// a failed step must leave the database as it was). down_sql is bytea, so a down file's bytes are
// kept exactly, whatever their encoding. Inside a step's transaction applied_at is the server's
// now() (the transaction's start) and the duration runs to clock_timestamp() at the append;
// outside one the driver passes both.

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"
#include "core/history.hpp"

namespace dbstep::drivers::pg {

// How values become SQL literals: the driver passes libpqxx's quoting for its connection
// (quote(), quote_raw()), which knows the server's string settings.
struct Literals {
  std::function<std::string(std::string_view)> text;   // a text literal: 'it''s'
  std::function<std::string(std::string_view)> bytes;  // a bytea literal
};

class HistorySql {
 public:
  // `quoted` is the table as SQL names it ("schema"."table" or "table"); `name` as messages do.
  // Without `literals`, E'' strings and decode(hex), right whatever the server's settings.
  HistorySql(std::string quoted, std::string name, Literals literals = {});
  const std::string& name() const { return name_; }

  std::string create() const;
  // The INSERT of `row`. With `timing` (applied_at as text UTC, duration in ms) those values are
  // written; without, the server's now() and clock_timestamp() - now().
  struct Timing {
    std::string applied_at;
    double duration_ms = 0;
  };
  // The row's id is `id` when the caller knows the next one (next_id() read it, and the caller
  // counts its own appends since, under the migration lock), else max + 1 read by the INSERT,
  // which costs the server about as much again as the rest of the INSERT.
  std::string insert(const HistoryRow& row, const std::optional<Timing>& timing = {},
                     std::optional<std::int64_t> id = std::nullopt) const;
  // insert() without `timing`, with `id`, as prepared statement `name` (an identifier) taking
  // the row's values (id, version, identifier, direction, kind, checksum, down_sql, applied_by,
  // dbstep_version); execute_insert() runs it for `row`. The server then does not parse and
  // analyse the INSERT again for every migration (prepared_bookkeeping.hpp).
  std::string prepare_insert(std::string_view name) const;
  std::string execute_insert(std::string_view name, const HistoryRow& row, std::int64_t id) const;
  // The id the next row takes (one row, one column).
  std::string next_id() const;
  // Every row in id order, columns as parse_row() reads them (down_sql as a has-one flag).
  std::string select() const;
  // For each of `versions` (each at most INT64_MAX): the version and the down SQL of its latest
  // up row, as hex digits whatever bytea_output says (decode with from_hex()); NULL when that row
  // stored none. One row per version that has an up row.
  std::string select_downs(const std::vector<Version>& versions) const;
  // select() reduced to id, version, direction and kind (parse with parse_mark()), in no order:
  // each mark carries its id, and sorting 1,000 rows cost the server a quarter of the read.
  std::string select_marks() const;
  // The four columns of select_marks() as text (nullopt: NULL), checked as parse_row() checks
  // them.
  HistoryMark parse_mark(std::optional<std::string_view> id, std::optional<std::string_view> version,
                         std::optional<std::string_view> direction,
                         std::optional<std::string_view> kind) const;
  // One row of select(): eleven columns as text, NULL as nullopt. Throws Error(kDatabase) naming
  // the table and the row id when the row is malformed (unknown kind or direction ...).
  HistoryRow parse_row(const std::vector<std::optional<std::string>>& columns) const;
  // The error for a select() that failed because the table has another shape.
  std::string wrong_shape(const std::string& server_message) const;

 private:
  // Error(kDatabase) naming the table and the row for a row dbstep cannot read.
  Error bad_row(std::string_view id, std::string_view what) const;
  std::string literal(std::string_view text) const;
  std::string optional_literal(const std::optional<std::string>& v) const;
  std::string bytes_literal(const std::optional<std::string>& v) const;

  std::string quoted_;
  std::string name_;
  Literals literals_;
};

// Hex back to bytes: bytea's hex output ("\x414243") or encode()'s ("414243"); nullopt when the
// text is neither.
std::optional<std::string> from_hex(const std::string& text);

}  // namespace dbstep::drivers::pg
