#include "testing/move.hpp"

#include <fmt/format.h>

namespace dbstep::testing {

void move_to(Migrator& migrator, OptVersion target, std::string_view what) {
  Result result = target ? migrator.migrate_to(*target) : migrator.down();
  if (result.ok()) return;
  const Error& cause = *result.error;
  Error error(cause.code(), fmt::format("moving {} from version {} to {} failed (it is now "
                                        "at version {}): {}",
                                        what, to_string(result.from), to_string(target),
                                        to_string(result.to), cause.what()));
  error.file = cause.file;
  error.version = cause.version;
  error.line = cause.line;
  error.column = cause.column;
  error.sqlstate = cause.sqlstate;
  error.detail = cause.detail;
  error.statement = cause.statement;
  throw error;
}

}  // namespace dbstep::testing
