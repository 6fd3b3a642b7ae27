#pragma once
// dbstep's one error type. Every failure the library reports is a dbstep::Error with a code that
// callers can switch on and the fields that locate it (file, version, line, column, SQLSTATE).
// Drivers and sources translate their back-end's exceptions into it at their boundary, so
// nothing from SQLiteCpp or libpqxx escapes. The message (what()) is complete on its own: it says
// what happened, to what, and, where there is one, what to do.

#include <cstdint>
#include <stdexcept>
#include <string>

#include "core/version.hpp"

namespace dbstep {

enum class ErrorCode {
  kInvalidArgument,     // a bad URL, parameter or argument
  kUnknownScheme,       // no driver or source is registered for a URL's scheme
  kSourceUnavailable,   // the migration folder (or other source) cannot be read
  kDuplicateMigration,  // two files with the same version and direction
  kNoMigrations,        // the source holds no migration at all
  kMissingVersion,      // a version named by the database or the caller has no file
  kDirty,               // the database is marked dirty; `force` is needed
  kLocked,              // this Migrator/driver already holds the lock
  kLockTimeout,         // another process held the lock for the whole lock timeout
  kStopped,             // a stop request ended the wait for the lock: nothing was done
  kValidation,          // applied migrations' files were edited (migrate refuses; see validate)
  kMigrationFailed,     // a migration's SQL failed; the fields locate the statement
  kDatabase,            // any other database failure (connecting, reading the version ...)
  kInternal,            // a bug or an unexpected exception from below
};

const char* to_string(ErrorCode code);

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message) : std::runtime_error(message), code_(code) {}

  ErrorCode code() const noexcept { return code_; }

  // The same error (code and every field below) with another message: for adding context to an
  // error on its way up without losing where it is.
  Error with_message(const std::string& message) const {
    Error e = *this;
    static_cast<std::runtime_error&>(e) = std::runtime_error(message);
    return e;
  }

  // Where the failure is, when it is about a migration. Empty/zero when unknown.
  std::string file;        // the migration's file name, e.g. "3_add_users.up.sql"
  OptVersion version;      // the migration's version
  std::uint32_t line = 0;  // 1-based line in the file of the failing statement or error position
  std::uint32_t column = 0;  // 1-based column, counted in characters (UTF-8 code points)
  std::string sqlstate;    // PostgreSQL SQLSTATE, or SQLite's extended result code as text
  std::string detail;      // the database's own message, detail and hint
  std::string statement;   // the failing statement's text

 private:
  ErrorCode code_;
};

}  // namespace dbstep
