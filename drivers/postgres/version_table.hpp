#pragma once
// golang-migrate's version table on PostgreSQL, as SQL text:
//   CREATE TABLE schema_migrations (version bigint not null primary key, dirty boolean not null)
// holding one row (golang-migrate's rule: {none, clean} is an empty table, {none, dirty} the row
// (-1, true)).
//
// The write that records a migration is a compare-and-swap fused into one statement: it deletes
// the row, checks that what it deleted is the state the Migrator planned from, and inserts the
// new one; when another process moved the version first the check fails with division_by_zero
// (SQLSTATE 22012, kStateMoved) and the migration's transaction rolls back. Sent as the last
// statement before COMMIT, it replaces a LOCK TABLE and a state read at the start of every
// migration: a racing writer blocks on the row the DELETE takes (or on the primary key) and
// finds, once the other commits, a row that is no longer the expected one.

#include <string>
#include <string_view>
#include <vector>

#include <pqxx/result>

#include "core/driver.hpp"

namespace dbstep::drivers::pg {

// What check_and_write() fails with when the stored state is not the expected one.
inline constexpr std::string_view kStateMoved = "22012";

class VersionTable {
 public:
  // `quoted` is the table as SQL names it ("schema"."table").
  explicit VersionTable(std::string quoted) : quoted_(std::move(quoted)) {}
  const std::string& name() const { return quoted_; }

  std::string create() const;
  // The state as state() reads it: the first row.
  std::string select() const;
  // Excludes other writers until commit; plain SELECTs still read the committed version.
  std::string lock() const;
  // Replaces the row with `s`, unchecked (after lock() and a read in the same transaction): one
  // statement each, for a pipeline.
  std::vector<std::string> write(const DbState& s) const;
  // The fused compare-and-swap: {expected} -> {next}, one statement.
  std::string check_and_write(const DbState& expected, const DbState& next) const;

  // The state in `r` (select()'s result). Throws Error(kDatabase) for a version that is not one.
  DbState parse(const pqxx::result& r) const;

 private:
  std::string quoted_;
};

// A version as the bigint column holds it ("-1" for none). Throws Error(kInvalidArgument) for a
// version past bigint's range.
std::string version_literal(const OptVersion& v);

}  // namespace dbstep::drivers::pg
