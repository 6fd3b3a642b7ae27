#include "testing/move.hpp"

#include <fmt/format.h>

namespace dbstep::testing {

void move_to(Migrator& migrator, OptVersion target, std::string_view what) {
  Result result = target ? migrator.migrate_to(*target) : migrator.down();
  if (result.ok()) return;
  const Error& cause = *result.error;
  throw cause.with_message(fmt::format("moving {} from version {} to {} failed (it is now at "
                                       "version {}): {}",
                                       what, to_string(result.from), to_string(target),
                                       to_string(result.to), cause.what()));
}

}  // namespace dbstep::testing
