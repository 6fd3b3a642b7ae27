#include "cli/json_output.hpp"

#include <chrono>

#include <nlohmann/json.hpp>

namespace dbstep::cli {

// ordered_json keeps keys in the order written here, the order the README documents.
using json = nlohmann::ordered_json;

namespace {

void write(std::ostream& out, const json& document) {
  // Messages may quote a file's bytes (an invalid UTF-8 statement): replaced, never a throw.
  out << document.dump(2, ' ', false, json::error_handler_t::replace) << "\n";
  out.flush();
}

json version_or_null(const OptVersion& v) { return v ? json(*v) : json(nullptr); }

json text_or_null(const std::string& s) { return s.empty() ? json(nullptr) : json(s); }

template <typename T>
json optional_or_null(const std::optional<T>& v) {
  return v ? json(*v) : json(nullptr);
}

json migration_json(const VersionStatus& s) {
  // The latest history row describes the version's current state only while it is applied (or
  // dirty); a pending version's latest row is its rollback.
  const bool ran = s.last && (s.state == MigrationState::kApplied ||
                              s.state == MigrationState::kDirty);
  return json{
      {"version", s.version},
      {"identifier", s.identifier},
      {"state", to_string(s.state)},
      {"up_file", text_or_null(s.up_file)},
      {"down_file", text_or_null(s.down_file)},
      {"edited", s.edited},
      {"file_missing", s.file_missing},
      {"before_history", s.before_history},
      {"down_stored", s.down_stored},
      {"checksum", optional_or_null(s.recorded_checksum)},
      {"file_checksum", optional_or_null(s.file_checksum)},
      {"kind", ran ? json(to_string(s.last->kind)) : json(nullptr)},
      {"applied_at", ran ? json(s.last->applied_at) : json(nullptr)},
      {"duration_ms", ran ? json(s.last->duration_ms) : json(nullptr)},
      {"applied_by", ran ? json(s.last->applied_by) : json(nullptr)},
  };
}

json error_json(const Error& e);

json ms(std::chrono::nanoseconds d) { return std::chrono::duration<double, std::milli>(d).count(); }

const char* direction_name(Direction d) { return d == Direction::kUp ? "up" : "down"; }

}  // namespace

const char* json_error_code(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument: return "invalid_argument";
    case ErrorCode::kUnknownScheme: return "unknown_scheme";
    case ErrorCode::kSourceUnavailable: return "source_unavailable";
    case ErrorCode::kDuplicateMigration: return "duplicate_migration";
    case ErrorCode::kNoMigrations: return "no_migrations";
    case ErrorCode::kMissingVersion: return "missing_version";
    case ErrorCode::kDirty: return "dirty";
    case ErrorCode::kLocked: return "locked";
    case ErrorCode::kLockTimeout: return "lock_timeout";
    case ErrorCode::kStopped: return "stopped";
    case ErrorCode::kValidation: return "validation";
    case ErrorCode::kMigrationFailed: return "migration_failed";
    case ErrorCode::kDatabase: return "database";
    case ErrorCode::kInternal: return "internal";
  }
  return "internal";
}

void write_version_json(std::ostream& out, const DbState& state) {
  write(out, json{{"version", version_or_null(state.version)}, {"dirty", state.dirty}});
}

void write_status_json(std::ostream& out, const StatusReport& report) {
  json migrations = json::array();
  for (const auto& s : report.versions) migrations.push_back(migration_json(s));
  const StatusSummary& sum = report.summary;
  write(out, json{
                 {"version", version_or_null(report.state.version)},
                 {"dirty", report.state.dirty},
                 {"history_table", report.history_table},
                 {"migrations", std::move(migrations)},
                 {"summary",
                  {
                      {"total", report.versions.size()},
                      {"applied", sum.applied},
                      {"pending", sum.pending},
                      {"out_of_order", sum.out_of_order},
                      {"dirty", sum.dirty},
                      {"edited", sum.edited},
                      {"file_missing", sum.file_missing},
                      {"before_history", sum.before_history},
                  }},
             });
}

void write_problems_json(std::ostream& out, const std::vector<ValidationProblem>& problems) {
  json list = json::array();
  for (const auto& p : problems) {
    list.push_back(json{{"version", p.version}, {"file", p.file}, {"message", p.message}});
  }
  write(out, json{{"ok", problems.empty()}, {"problems", std::move(list)}});
}

namespace {

json error_json(const Error& e) {
  return json{
      {"code", json_error_code(e.code())},
      {"message", e.what()},
      {"file", text_or_null(e.file)},
      {"line", e.line ? json(e.line) : json(nullptr)},
      {"column", e.column ? json(e.column) : json(nullptr)},
      {"sqlstate", text_or_null(e.sqlstate)},
      {"version", version_or_null(e.version)},
      {"detail", text_or_null(e.detail)},
      {"statement", text_or_null(e.statement)},
  };
}

}  // namespace

void write_error_json(std::ostream& out, const Error& e) {
  write(out, json{{"error", error_json(e)}});
}

void write_run_json(std::ostream& out, const std::string& command, const Result& r) {
  json steps = json::array();
  for (const auto& s : r.steps) {
    steps.push_back(json{
        {"version", s.version},
        {"identifier", s.identifier},
        {"file", text_or_null(s.file)},
        {"direction", direction_name(s.direction)},
        {"target", version_or_null(s.target)},
        {"duration_ms", ms(s.duration)},
    });
  }
  write(out, json{
                 {"command", command},
                 {"ok", r.ok()},
                 {"dry_run", false},
                 {"from", version_or_null(r.from)},
                 {"to", version_or_null(r.to)},
                 {"duration_ms", ms(r.duration)},
                 {"steps", std::move(steps)},
                 {"short_by", r.short_by},
                 {"stopped", r.stopped},
                 {"concurrent", r.concurrent},
                 {"backup", r.backup ? json(*r.backup) : json(nullptr)},
                 {"error", r.error ? error_json(*r.error) : json(nullptr)},
             });
}

void write_dry_run_json(std::ostream& out, const std::string& command, const DryRun& dry) {
  json steps = json::array();
  for (const auto& s : dry.steps) {
    json statements = json::array();
    json notes = json::array();
    if (s.preview) {
      for (const auto& st : s.preview->statements) {
        statements.push_back(json{{"line", st.line}, {"column", st.column}, {"text", st.text}});
      }
      for (const auto& n : s.preview->notes) notes.push_back(n);
    }
    const bool known = s.preview.has_value();
    steps.push_back(json{
        {"version", s.planned.version},
        {"identifier", s.planned.identifier},
        {"file", text_or_null(s.file)},
        {"direction", direction_name(s.planned.direction)},
        {"target", version_or_null(s.planned.target)},
        {"in_transaction", known ? json(s.preview->in_transaction) : json(nullptr)},
        {"why_outside", known ? text_or_null(s.preview->why_outside) : json(nullptr)},
        {"notes", std::move(notes)},
        {"statements", known ? std::move(statements) : json(nullptr)},
    });
  }
  write(out, json{
                 {"command", command},
                 {"ok", true},
                 {"dry_run", true},
                 {"from", version_or_null(dry.state.version)},
                 {"to", version_or_null(dry.plan.to())},
                 {"dirty", dry.state.dirty},
                 {"steps", std::move(steps)},
                 {"short_by", dry.plan.short_by},
                 {"error", nullptr},
             });
}

void write_force_json(std::ostream& out, const OptVersion& version) {
  write(out, json{{"command", "force"},
                  {"ok", true},
                  {"version", version_or_null(version)},
                  {"dirty", false},
                  {"error", nullptr}});
}

void write_drop_json(std::ostream& out, const std::string& database) {
  write(out, json{{"command", "drop"}, {"ok", true}, {"database", database}, {"error", nullptr}});
}

void write_error_json(std::ostream& out, const std::string& code, const std::string& message) {
  write(out, json{{"error",
                   {
                       {"code", code},
                       {"message", message},
                       {"file", nullptr},
                       {"line", nullptr},
                       {"column", nullptr},
                       {"sqlstate", nullptr},
                       {"version", nullptr},
                       {"detail", nullptr},
                       {"statement", nullptr},
                   }}});
}

void write_create_json(std::ostream& out, Version version, const std::string& name,
                       const std::string& up_file, const std::string& down_file) {
  write(out, json{{"version", version},
                  {"name", name},
                  {"up_file", up_file},
                  {"down_file", down_file}});
}

}  // namespace dbstep::cli
