#include "core/driver.hpp"

#include <fmt/format.h>

#include "core/error.hpp"

namespace dbstep {

bool Driver::apply_batch(const DbState& /*expected*/, const StepFeed& /*next*/) {
  throw Error(ErrorCode::kInvalidArgument,
              fmt::format("{} cannot run several migrations in one transaction; run without "
                          "--single-transaction",
                          describe()));
}

}  // namespace dbstep
