#pragma once
// verify: checks that every migration's down undoes its up, on a scratch database, before a
// rollback in production finds out.
//
// For each migration in order, on a database no one else uses: snapshot the schema, run the up,
// snapshot, run the down, snapshot again and compare with the first (the down must restore the
// schema exactly), then run the up again and compare with the second (the up must work again
// after its down, with the same result). Every down that does not restore the schema is
// reported with the difference, every down that fails with its error. The schema is compared
// with Driver::schema_snapshot() (core/schema_snapshot.hpp); data is not compared.
//
// verify() makes the scratch database itself, beside the database it is given (a temporary file
// for SQLite, CREATE DATABASE on the same PostgreSQL server), and removes it afterwards, also
// when the run fails; the given database is touched only to create and drop it. Or it runs on a
// scratch database the caller names, which must be empty and is left empty. Used from one
// thread; throws dbstep::Error for what keeps it from running at all (the scratch database
// cannot be made, the source cannot be read); what it finds comes back in the report.

#include <atomic>
#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"
#include "core/migrator.hpp"
#include "core/registry.hpp"
#include "core/version.hpp"

namespace dbstep {

enum class VerifyProblemKind {
  kNotRestored,     // after up and down the schema differs from before the up
  kDownFailed,      // the down migration failed
  kUpFailed,        // the up migration failed (on the scratch database, from a clean state)
  kReapplyFailed,   // the up failed when run again after its down
  kReapplyDiffers,  // the up run again after its down gave another schema than the first time
};

const char* to_string(VerifyProblemKind kind);

struct VerifyProblem {
  Version version = 0;
  std::string identifier;
  VerifyProblemKind kind = VerifyProblemKind::kNotRestored;
  std::string message;         // one complete sentence: which migration, what went wrong
  std::string difference;      // kNotRestored, kReapplyDiffers: unified diff (before -> after)
  std::optional<Error> error;  // the failures: the database's error, with file and line
};

struct VerifyReport {
  std::vector<Version> checked;        // the migrations whose up, down and up again ran
  std::vector<VerifyProblem> problems;  // in the order found
  // An up failed (or a stop request came), so the migrations after it were not checked.
  bool completed = true;
  std::string scratch;  // the scratch database, as Driver::describe() names it
  std::chrono::nanoseconds duration{0};
  bool ok() const { return problems.empty() && completed; }
};

struct VerifyOptions {
  // Check from the first migration at or above this version; the ones below are applied first
  // without checks. None: from the first.
  OptVersion from;
  std::chrono::milliseconds lock_timeout{15000};
  // Checked before and after each step: verify stops (completed = false; the migration being
  // checked is not judged) and cleans up. Borrowed.
  const std::atomic<bool>* stop = nullptr;
  // Called before each migration is checked (progress output). May be empty.
  std::function<void(Version, const std::string&)> on_migration;
  // verify(): called with the scratch database's Migrator once it is open and with nullptr
  // before it is closed (the CLI points its signal handlers at it). May be empty.
  std::function<void(Migrator*)> on_scratch;
};

// Runs the checks with `scratch`, a Migrator on an empty database (Error(kInvalidArgument) when
// it has a version or any schema object). Leaves the database at the last version reached;
// removing it is the caller's business.
VerifyReport verify_on(Migrator& scratch, const VerifyOptions& options);

// verify_on() on a new scratch database beside `database_url` (Driver::create_scratch_database)
// with the migrations of `source_url`, dropped afterwards whatever happens; or, when
// `scratch_url` is given, on that database (which must be empty; everything verify made in it is
// dropped at the end). Throws Error(kDatabase) saying which right is missing when the server
// refuses to create the scratch database.
VerifyReport verify(const Registry& registry, std::string_view database_url,
                    std::string_view source_url, const VerifyOptions& options = {},
                    std::optional<std::string> scratch_url = std::nullopt);

}  // namespace dbstep
