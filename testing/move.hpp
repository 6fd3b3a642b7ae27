#pragma once
// Moving a test database to a version through a Migrator, with failures thrown as dbstep::Error
// naming the test database and the move (the Migrator reports them in its Result instead). Shared
// by the SQLite and PostgreSQL test databases and their templates.

#include <string_view>

#include "core/migrator.hpp"

namespace dbstep::testing {

// Moves the database `migrator` drives up or down to exactly `target` (none: every migration rolled
// back). `what` names the database in the error ("test database /tmp/x.sqlite"). Throws the run's
// Error with the same code and fields and a message that starts with the move: "moving test
// database X from version 5 to 6 failed: migration 6 (...) failed at line 3 ...".
void move_to(Migrator& migrator, OptVersion target, std::string_view what);

}  // namespace dbstep::testing
