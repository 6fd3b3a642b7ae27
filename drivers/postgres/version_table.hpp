#pragma once
// golang-migrate's version table on PostgreSQL, as SQL text:
//   CREATE TABLE schema_migrations (version bigint not null primary key, dirty boolean not null)
// holding one row (golang-migrate's rule: {none, clean} is an empty table, {none, dirty} the row
// (-1, true)).
//
// The write that records a migration is a compare-and-swap in one statement, sent as the last
// before COMMIT; it replaces a LOCK TABLE and a state read at the start of every migration. When
// the row is the expected one and a row stays (most steps), on PostgreSQL 15 and later it is a
// MERGE that updates the row where it is the expected state and otherwise inserts a NULL
// version, which the column refuses (not_null_violation, 23502): one statement as cheap for the
// server as the DELETE and INSERT it replaces. Otherwise (none before or after, or an older
// server) it deletes the row, checks that what it deleted is the expected state, and inserts the
// new one, the check failing with division_by_zero (22012). Either failure means another process
// moved the version first (is_state_moved()), and the migration's transaction rolls back: a
// racing writer blocks on the row the other took (or on the primary key) and finds, once the
// other commits, a row that is no longer the expected one, or none (MERGE then takes the
// not-matched branch).
//
// On a session that is the driver's own for the whole run (prepared_bookkeeping.hpp), the MERGE
// is prepared once (prepare_check_and_write) and each migration sends EXECUTE with its four
// values: the server then neither parses nor analyses it again, which cost it about 7% of a
// small migration's time, more than any other part of the bookkeeping.

#include <string>
#include <string_view>
#include <vector>

#include <pqxx/result>

#include "core/driver.hpp"

namespace dbstep::drivers::pg {

// What check_and_write() fails with when the stored state is not the expected one.
inline bool is_state_moved(std::string_view sqlstate) {
  return sqlstate == "22012" || sqlstate == "23502";
}

class VersionTable {
 public:
  // `quoted` is the table as SQL names it ("schema"."table"); `merge`: the server has MERGE
  // (PostgreSQL 15 and later).
  VersionTable(std::string quoted, bool merge) : quoted_(std::move(quoted)), merge_(merge) {}
  const std::string& name() const { return quoted_; }
  // MERGE's UPDATE branch needs the UPDATE privilege, which golang-migrate's DELETE and INSERT do
  // not: a role without it (found once per session) gets the DELETE and INSERT form.
  void forgo_merge() { merge_ = false; }
  // Whether check_and_write() takes the MERGE form where a row stays (the server has MERGE, and
  // it was not forgone).
  bool uses_merge() const { return merge_; }

  std::string create() const;
  // The state as state() reads it: the first row.
  std::string select() const;
  // Excludes other writers until commit; plain SELECTs still read the committed version.
  std::string lock() const;
  // Replaces the row with `s`, unchecked (after lock() and a read in the same transaction): one
  // statement each, for a pipeline.
  std::vector<std::string> write(const DbState& s) const;
  // The fused compare-and-swap: {expected} -> {next}, one statement (above).
  std::string check_and_write(const DbState& expected, const DbState& next) const;
  // The MERGE form of check_and_write() as prepared statement `name` (an identifier), taking
  // (expected version, expected dirty, next version, next dirty); only when uses_merge().
  std::string prepare_check_and_write(std::string_view name) const;
  // check_and_write() through prepared statement `name` (prepare_check_and_write()) when it
  // takes the MERGE form, else check_and_write() itself.
  std::string execute_check_and_write(std::string_view name, const DbState& expected,
                                      const DbState& next) const;

  // The state in `r` (select()'s result). Throws Error(kDatabase) for a version that is not one.
  DbState parse(const pqxx::result& r) const;

 private:
  // Whether check_and_write() takes the MERGE form for this step.
  bool merges(const DbState& expected, const DbState& next) const;

  std::string quoted_;
  bool merge_;
};

// A version as the bigint column holds it ("-1" for none). Throws Error(kInvalidArgument) for a
// version past bigint's range.
std::string version_literal(const OptVersion& v);

}  // namespace dbstep::drivers::pg
