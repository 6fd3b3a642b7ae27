#include "cli/human_output.hpp"

#include <algorithm>
#include <cstdio>

#include <fmt/format.h>
#include <fmt/ostream.h>
#include <fmt/ranges.h>

namespace dbstep::cli {

using namespace std::chrono_literals;

std::string format_duration(std::chrono::nanoseconds d) {
  double ms = std::chrono::duration<double, std::milli>(d).count();
  if (ms < 1000) return fmt::format("{:.1f} ms", ms);
  return fmt::format("{:.2f} s", ms / 1000);
}

namespace {

std::string format_ms(double ms) {
  return format_duration(std::chrono::nanoseconds(static_cast<std::int64_t>(ms * 1e6)));
}

// core's name for the state, in words: "out_of_order" reads "out of order".
std::string state_text(MigrationState state) {
  std::string text = to_string(state);
  std::replace(text.begin(), text.end(), '_', ' ');
  return text;
}

// Whether the row's time and duration describe the version being applied now: the latest row
// of an applied or dirty version (a pending version's latest row, if any, is its rollback).
bool shows_last_run(const VersionStatus& s) {
  return s.last &&
         (s.state == MigrationState::kApplied || s.state == MigrationState::kDirty);
}

std::string notes_of(const VersionStatus& s) {
  std::vector<std::string> notes;
  if (s.edited) notes.emplace_back("edited since applied");
  if (s.file_missing) notes.emplace_back("file missing");
  if (s.before_history) notes.emplace_back("applied before history");
  // Worth saying where a rollback will use it: the source has no down file for the version.
  if (s.down_stored && s.down_file.empty()) notes.emplace_back("down SQL stored");
  if (shows_last_run(s)) {
    switch (s.last->kind) {
      case HistoryKind::kBaseline:
        notes.emplace_back("baseline");
        break;
      case HistoryKind::kForced:
        notes.emplace_back("forced");
        break;
      case HistoryKind::kRepaired:
        notes.emplace_back("repaired");
        break;
      case HistoryKind::kFailed:
        notes.emplace_back("failed part way");
        break;
      case HistoryKind::kApplied:
        break;
    }
  }
  return fmt::format("{}", fmt::join(notes, ", "));
}

// Prints rows as columns padded to their widest cell; numbers (the first column) right-aligned;
// the last column is not padded, and no line ends in spaces.
void print_table(std::ostream& out, const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> width;
  for (const auto& row : rows) {
    width.resize(std::max(width.size(), row.size()));
    for (std::size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
  }
  for (const auto& row : rows) {
    std::string line;
    for (std::size_t i = 0; i < row.size(); ++i) {
      if (i > 0) line += "  ";
      if (i == 0) {
        line += std::string(width[i] - row[i].size(), ' ') + row[i];
      } else if (i + 1 < row.size()) {
        line += row[i] + std::string(width[i] - row[i].size(), ' ');
      } else {
        line += row[i];
      }
    }
    line.erase(line.find_last_not_of(' ') + 1);
    fmt::print(out, "{}\n", line);
  }
}

std::string summary_of(const StatusReport& report) {
  const StatusSummary& s = report.summary;
  std::string text = fmt::format("{} migration(s): {} applied, {} pending", report.versions.size(),
                                 s.applied, s.pending);
  if (s.out_of_order) text += fmt::format(", {} out of order", s.out_of_order);
  if (s.dirty) text += fmt::format(", {} dirty", s.dirty);
  std::vector<std::string> flags;
  if (s.edited) flags.push_back(fmt::format("{} edited since applied", s.edited));
  if (s.file_missing) flags.push_back(fmt::format("{} with files missing", s.file_missing));
  if (s.before_history) flags.push_back(fmt::format("{} applied before history", s.before_history));
  if (!flags.empty()) text += fmt::format("; {}", fmt::join(flags, ", "));
  return text;
}

}  // namespace

void ConsoleObserver::on_locked(std::chrono::nanoseconds waited) {
  if (mode_.quiet || mode_.json) return;
  if (mode_.verbose || waited > 1s) {
    fmt::print(out_, "Acquired the migration lock after {}\n", format_duration(waited));
  }
}

void ConsoleObserver::on_plan(const Plan& plan) {
  if (mode_.quiet || mode_.json) return;
  finish();
  if (plan.replanned) {
    fmt::print(out_, "Another process moved the database to version {} meanwhile\n",
               to_string(plan.from));
  }
  total_ = started_ + plan.steps.size();
  progress_ = mode_.terminal && !mode_.verbose && total_ > kProgressAfter;
  if (plan.steps.empty()) return;
  bool up = plan.steps.front().direction == Direction::kUp;
  // --out-of-order: steps below the starting version run first and leave the version as it is.
  const auto below = !up || !plan.from ? 0
                     : std::count_if(plan.steps.begin(), plan.steps.end(),
                                     [&](const PlannedStep& s) { return s.version < *plan.from; });
  // A redo rolls back and applies the same version.
  const bool redo = plan.steps.size() == 2 && !up &&
                    plan.steps.back().direction == Direction::kUp &&
                    plan.steps.back().version == plan.steps.front().version;
  if (redo) {
    fmt::print(out_, "Redoing migration {}: rolling it back and applying it again\n",
               plan.steps.front().version);
  } else {
    fmt::print(out_, "{} {} {}migration(s) from version {} to {}{}\n",
               up ? "Running" : "Rolling back", plan.steps.size(), up ? "pending " : "",
               to_string(plan.from), to_string(plan.to()),
               below ? fmt::format(" ({} out of order)", below) : "");
  }
  out_.flush();
}

std::string ConsoleObserver::progress_label(Version version, const std::string& identifier) const {
  const std::size_t width = std::to_string(total_).size();
  return fmt::format("[{:>{}}/{}] {}_{}", started_, width, total_, version, identifier);
}

void ConsoleObserver::show_progress(const std::string& text) {
  // Spaces over what is left of a longer previous line: no terminal escape sequences needed.
  const std::size_t pad = shown_length_ > text.size() ? shown_length_ - text.size() : 0;
  fmt::print(out_, "\r{}{}", text, std::string(pad, ' '));
  if (pad) fmt::print(out_, "\r{}", text);
  shown_length_ = text.size();
  out_.flush();
}

void ConsoleObserver::on_step_started(const PlannedStep& step) {
  ++started_;
  if (mode_.quiet || mode_.json) return;
  if (progress_) {
    show_progress(progress_label(step.version, step.identifier) + " ...");
  } else if (mode_.verbose) {
    fmt::print(out_, "  {} migration {}: {} ...\n",
               step.direction == Direction::kUp ? "applying" : "rolling back", step.version,
               step.identifier);
    out_.flush();
  }
}

void ConsoleObserver::on_step_finished(const AppliedStep& step) {
  if (mode_.quiet || mode_.json) return;
  if (progress_) {
    show_progress(fmt::format("{} ... {}", progress_label(step.version, step.identifier),
                              format_duration(step.duration)));
    return;
  }
  bool up = step.direction == Direction::kUp;
  std::string note = step.file.empty()
                         ? fmt::format(", no {} file: only the version moved", up ? "up" : "down")
                         : "";
  fmt::print(out_, "{} migration {}: {} ({}{})\n", up ? "Applied" : "Rolled back", step.version,
             step.identifier, format_duration(step.duration), note);
  out_.flush();
}

void ConsoleObserver::on_notice(const std::string& message) {
  if (mode_.quiet) return;
  finish();
  out_.flush();  // keep the note in its place among the step lines on a terminal
  fmt::print(err_, "note: {}\n", message);
  err_.flush();
}

void ConsoleObserver::on_backup(const std::string& path) {
  if (mode_.quiet || mode_.json) return;
  finish();
  fmt::print(out_, "Backed up the database to {}\n", path);
  out_.flush();
}

void ConsoleObserver::finish() {
  if (shown_length_ == 0) return;
  fmt::print(out_, "\n");
  out_.flush();
  shown_length_ = 0;
}

namespace {

// A statement's lines, the first after `first_prefix`, the others indented to line up with it.
void print_statement(std::ostream& out, const StatementPreview& st) {
  const std::string prefix = fmt::format("    line {}: ", st.line);
  std::size_t at = 0;
  bool first = true;
  while (at <= st.text.size()) {
    std::size_t eol = st.text.find('\n', at);
    if (eol == std::string::npos) eol = st.text.size();
    std::string line = st.text.substr(at, eol - at);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    fmt::print(out, "{}{}\n", first ? prefix : std::string(prefix.size(), ' '), line);
    first = false;
    at = eol + 1;
  }
}

}  // namespace

void print_dry_run(std::ostream& out, const DryRun& dry, const std::string& command,
                   const std::string& database) {
  const std::string at = fmt::format("{} is at version {}", database, to_string(dry.state.version));
  if (dry.steps.empty()) {
    fmt::print(out, "Dry run of {}: nothing to do; {}\n", command, at);
  } else {
    fmt::print(out, "Dry run of {}: nothing was changed; {}. The run would take {} step(s) to "
                    "version {}:\n",
               command, at, dry.steps.size(), to_string(dry.plan.to()));
  }
  std::size_t i = 0;
  for (const auto& s : dry.steps) {
    ++i;
    const bool up = s.planned.direction == Direction::kUp;
    std::string how;
    if (s.file.empty()) {
      how = fmt::format("no {} file: only the version is recorded", up ? "up" : "down");
    } else if (!s.preview) {
      how = "how it runs is not known for this database";
    } else if (s.preview->in_transaction) {
      how = "in a transaction";
    } else {
      how = fmt::format("outside a transaction ({}): dirty until it ends",
                        s.preview->why_outside);
    }
    fmt::print(out, "[{}/{}] migration {} {} to version {}: {}{}{}\n", i, dry.steps.size(),
               s.planned.version, up ? "up" : "down", to_string(s.planned.target),
               s.file.empty() ? "" : s.file, s.file.empty() ? "" : ", ", how);
    if (!s.preview) continue;
    for (const auto& note : s.preview->notes) fmt::print(out, "    note: {}\n", note);
    if (s.preview->statements.empty()) fmt::print(out, "    (no statements)\n");
    for (const auto& st : s.preview->statements) print_statement(out, st);
  }
  if (dry.plan.short_by > 0) {
    fmt::print(out, "{} fewer migration(s) than requested are available\n", dry.plan.short_by);
  }
}

void print_error(std::ostream& err, const Error& e, bool verbose) {
  fmt::print(err, "error: {}\n", e.what());
  if (!e.statement.empty()) fmt::print(err, "  statement: {}\n", e.statement);
  if (verbose) fmt::print(err, "  (code: {})\n", to_string(e.code()));
}

void print_version(std::ostream& out, const DbState& state) {
  if (!state.version && !state.dirty) {
    fmt::print(out, "none (no migration applied yet)\n");
  } else {
    fmt::print(out, "{}{}\n", to_string(state.version), state.dirty ? " (dirty)" : "");
  }
}

void print_status(std::ostream& out, const StatusReport& report, const std::string& database,
                  bool verbose) {
  if (!report.state.version && !report.state.dirty) {
    fmt::print(out, "{}: no migration applied yet\n", database);
  } else {
    fmt::print(out, "{}: version {}{}\n", database, to_string(report.state.version),
               report.state.dirty ? " (dirty)" : "");
  }
  if (!report.history_table) {
    fmt::print(out, "No history table yet: dbstep records when each migration runs, and its "
                    "checksum, from its next step on this database\n");
  }
  if (report.versions.empty()) {
    fmt::print(out, "No migrations in the source\n");
    return;
  }
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> header = {"VERSION", "STATE", "NAME", "APPLIED AT (UTC)", "DURATION"};
  if (verbose) header.emplace_back("BY");
  header.emplace_back("NOTES");
  rows.push_back(header);
  for (const auto& s : report.versions) {
    const bool ran = shows_last_run(s);
    const bool timed = ran && (s.last->kind == HistoryKind::kApplied ||
                               s.last->kind == HistoryKind::kFailed);
    std::vector<std::string> row = {std::to_string(s.version), state_text(s.state), s.identifier,
                                    ran ? s.last->applied_at : "-",
                                    timed ? format_ms(s.last->duration_ms) : "-"};
    if (verbose) row.push_back(ran ? s.last->applied_by : "-");
    row.push_back(notes_of(s));
    rows.push_back(std::move(row));
  }
  print_table(out, rows);
  fmt::print(out, "{}\n", summary_of(report));
  const StatusSummary& sum = report.summary;
  if (sum.edited || sum.file_missing || sum.out_of_order || sum.dirty) {
    fmt::print(out, "Run `dbstep validate` for what to do about each problem\n");
  }
}

void print_problems(std::ostream& out, const std::vector<ValidationProblem>& problems) {
  if (problems.empty()) {
    fmt::print(out, "No problems found\n");
    return;
  }
  for (const auto& p : problems) {
    // Each line names its file: the engine's message does, or the file leads the line.
    if (p.message.find(p.file) != std::string::npos) {
      fmt::print(out, "{}\n", p.message);
    } else {
      fmt::print(out, "{}: {}\n", p.file, p.message);
    }
  }
  fmt::print(out, "{} problem(s) found\n", problems.size());
}

}  // namespace dbstep::cli
