#pragma once
// The SQLite driver's dry run (Driver::preview): each step of a plan split by the driver's own
// StatementWalk and classified by transaction_role(), as apply() does, without touching the
// database.
//
// SQLite can only prepare a statement once the statements before it have run (an INSERT needs
// its table), so the walk runs on a scratch in-memory database that starts as a copy of the
// database's schema (no rows) and on which every previewed statement is run in turn: each step
// sees the schema the steps before it left. The database itself is only read (its sqlite_master).
// Statements that would reach outside the scratch database (ATTACH, DETACH, VACUUM INTO) are
// prepared but not run; a statement that fails when run on the empty copy (a constraint the
// real rows would meet, say) is noted on the step, and the preview goes on.

#include <sqlite3.h>

#include <memory>
#include <string>
#include <vector>

#include "core/driver.hpp"

namespace dbstep::drivers::sqlite {

class PreviewRun {
 public:
  // `database`: the database's open connection, whose schema is copied; null when the database
  // does not exist yet. `pragmas`: the PRAGMA statements the driver runs on its connection (the
  // foreign-keys one is applied to the scratch copy). `no_tx_wrap`: x-no-tx-wrap.
  // Throws Error(kDatabase) when the scratch database cannot be made.
  PreviewRun(sqlite3* database, const std::vector<std::string>& pragmas, bool no_tx_wrap);

  // How apply() would run `step` (which has a file), then runs its statements on the scratch
  // copy. Throws the errors apply() would throw before running anything: a statement SQLite
  // cannot prepare, unaccounted text, a NUL byte, a BEGIN without COMMIT.
  StepPreview preview(const Step& step);

 private:
  struct Close {
    void operator()(sqlite3* db) const noexcept { sqlite3_close_v2(db); }
  };

  std::unique_ptr<sqlite3, Close> scratch_;
  bool no_tx_wrap_;
};

}  // namespace dbstep::drivers::sqlite
