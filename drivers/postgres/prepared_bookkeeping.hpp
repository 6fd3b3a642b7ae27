#pragma once
// The PostgreSQL driver's two bookkeeping statements, the history row's INSERT and the version
// write's MERGE (history_table.hpp, version_table.hpp), prepared once per server session
// (PREPARE ... AS) so that each migration's message carries EXECUTE with the step's values. The
// server then does not parse, analyse and plan them again for every migration, which cost it
// about 7% of a small migration's time, the MERGE's planning most of it (bench/README.md,
// "Prepared bookkeeping").
//
// When (the driver decides, with MigrationLock::session_is_ours()): only on a session that is
// surely the driver's alone for the run, the advisory lock held on a direct connection. Behind a
// pooler a transaction could run on a server session that never saw the PREPARE; there the
// statements travel as text, as before.
//
// How: in a round trip of their own, outside any transaction, before the first migration that
// uses them (the session's second: its first write makes the tables); PREPARE alone in its
// message, so the server keeps only that text. The version write is prepared in its MERGE form
// only (PostgreSQL 15 and later, a role that may UPDATE the table); its other forms travel as
// text. A PREPARE the server refuses (a history table of another shape ...) is not an error:
// the step sends the statements as text, whose failure says what is wrong.
//
// A migration could remove them (DEALLOCATE, DISCARD ALL): a step whose text names either runs
// with the statements as text, and the driver forgets the prepared ones, as after a step run
// outside a transaction, a --single-transaction batch and drop(). A function the file calls can
// still run DEALLOCATE: the step's EXECUTE then fails (SQLSTATE 26000), its transaction rolls
// back, and it runs once more with the statements as text. The next use prepares them again
// under new names (the old names may survive, and PREPARE refuses a name in use).
//
// Pure bookkeeping of names and flags: no connection.

#include <string>
#include <string_view>

#include "core/sql_text.hpp"

namespace dbstep::drivers::pg {

class PreparedBookkeeping {
 public:
  PreparedBookkeeping() { name(); }

  // Whether a migration of text `sql` may run with the prepared statements: false when the
  // text mentions DEALLOCATE or DISCARD anywhere (comments and strings included: cheap, and on
  // the safe side).
  static bool may_use_for(std::string_view sql);

  // The statements' names in this generation (SQL identifiers, no quoting needed).
  const std::string& version_write() const { return version_write_; }
  const std::string& history_insert() const { return history_insert_; }

  bool version_write_prepared() const { return version_write_prepared_; }
  bool history_insert_prepared() const { return history_insert_prepared_; }
  void set_version_write_prepared() { version_write_prepared_ = true; }
  void set_history_insert_prepared() { history_insert_prepared_ = true; }

  // Neither is prepared any more, as far as the driver can tell: the next use prepares them
  // under new names.
  void forget() {
    ++generation_;
    name();
  }

 private:
  void name() {
    version_write_ = "dbstep_version_write_" + std::to_string(generation_);
    history_insert_ = "dbstep_history_insert_" + std::to_string(generation_);
    version_write_prepared_ = history_insert_prepared_ = false;
  }

  unsigned generation_ = 0;
  std::string version_write_;
  std::string history_insert_;
  bool version_write_prepared_ = false;
  bool history_insert_prepared_ = false;
};

inline bool PreparedBookkeeping::may_use_for(std::string_view sql) {
  return !contains_ascii_ci(sql, "deallocate") && !contains_ascii_ci(sql, "discard");
}

}  // namespace dbstep::drivers::pg
