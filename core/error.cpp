#include "core/error.hpp"

namespace dbstep {

const char* to_string(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument: return "invalid argument";
    case ErrorCode::kUnknownScheme: return "unknown scheme";
    case ErrorCode::kSourceUnavailable: return "source unavailable";
    case ErrorCode::kDuplicateMigration: return "duplicate migration";
    case ErrorCode::kNoMigrations: return "no migrations";
    case ErrorCode::kMissingVersion: return "missing version";
    case ErrorCode::kDirty: return "dirty database";
    case ErrorCode::kLocked: return "locked";
    case ErrorCode::kLockTimeout: return "lock timeout";
    case ErrorCode::kStopped: return "stopped";
    case ErrorCode::kValidation: return "validation failed";
    case ErrorCode::kMigrationFailed: return "migration failed";
    case ErrorCode::kDatabase: return "database error";
    case ErrorCode::kInternal: return "internal error";
  }
  return "error";
}

}  // namespace dbstep
