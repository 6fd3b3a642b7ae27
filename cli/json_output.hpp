#pragma once
// The CLI's machine output (--json): each function writes one JSON document, built with
// nlohmann-json, followed by a newline. The shapes are documented in the README ("JSON output")
// and are stable: fields may be added, none renamed or removed. Absent values are null, never
// missing keys.

#include <ostream>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/migrator.hpp"
#include "core/status.hpp"

namespace dbstep::cli {

// {"version": 6 | null, "dirty": false}
void write_version_json(std::ostream& out, const DbState& state);

// {"version", "dirty", "history_table", "migrations": [...], "summary": {...}}
void write_status_json(std::ostream& out, const StatusReport& report);

// {"ok": true | false, "problems": [{"version", "file", "message"}]}
void write_problems_json(std::ostream& out, const std::vector<ValidationProblem>& problems);

// migrate, rollback, goto, redo: {"command", "ok", "dry_run": false, "from", "to",
// "duration_ms", "steps": [{"version", "identifier", "file", "direction", "target",
// "duration_ms"}], "short_by", "stopped", "concurrent", "backup" (--backup's copy, or null),
// "error": null | {error object}}.
void write_run_json(std::ostream& out, const std::string& command, const Result& r);

// The same commands under --dry-run: {"command", "ok": true, "dry_run": true, "from", "to",
// "dirty", "steps": [{"version", "identifier", "file", "direction", "target", "in_transaction",
// "why_outside", "notes", "statements": [{"line", "column", "text"}]}], "short_by", "error": null}.
void write_dry_run_json(std::ostream& out, const std::string& command, const DryRun& dry);

// force: {"command": "force", "ok": true, "version", "dirty": false, "error": null}
void write_force_json(std::ostream& out, const OptVersion& version);

// drop: {"command": "drop", "ok": true, "database", "error": null}
void write_drop_json(std::ostream& out, const std::string& database);

// {"error": {"code", "message", "file", "line", "column", "sqlstate", "version", "detail",
// "statement"}}; `code` is a stable snake_case name (json_error_code()).
void write_error_json(std::ostream& out, const Error& e);
// The same shape for errors that are not dbstep::Error: code "usage" for a usage error,
// "internal" for anything else.
void write_error_json(std::ostream& out, const std::string& code, const std::string& message);

// create: {"version": 3, "name": "add_users", "up_file": "/abs/...up.sql", "down_file": ...}
void write_create_json(std::ostream& out, Version version, const std::string& name,
                       const std::string& up_file, const std::string& down_file);

// The stable name of an error code in JSON: "invalid_argument", "validation", "lock_timeout" ...
const char* json_error_code(ErrorCode code);

}  // namespace dbstep::cli
