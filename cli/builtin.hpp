#pragma once
// The one place that knows every driver and source built into dbstep.

#include "core/registry.hpp"

namespace dbstep::cli {

// Registers sqlite://, sqlite3://, postgres://, postgresql://, file:// and embedded:// (dbstep's
// default migrations).
void register_builtin(Registry& registry);

}  // namespace dbstep::cli
