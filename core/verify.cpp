#include "core/verify.hpp"

#include <fmt/format.h>

#include <random>

#include "core/schema_snapshot.hpp"

namespace dbstep {

namespace {

using Clock = std::chrono::steady_clock;

// The snapshot's object lines (everything after its first, "dialect ...", line): empty for an
// empty schema.
std::string_view objects_of(std::string_view snapshot) {
  auto nl = snapshot.find('\n');
  return nl == std::string_view::npos ? std::string_view{} : snapshot.substr(nl + 1);
}

void require_empty(Migrator& m) {
  const DbState s = m.state();
  if (s.version || s.dirty) {
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("the scratch database {} is not empty (it is at version {}); verify "
                            "needs an empty database it may fill and empty again",
                            m.driver().describe(), to_string(s.version)));
  }
  const std::string snap = m.driver().schema_snapshot();
  std::string_view objects = objects_of(snap);
  if (!objects.empty()) {
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("the scratch database {} is not empty (it holds {}); verify needs an "
                            "empty database it may fill and empty again",
                            m.driver().describe(), objects.substr(0, objects.find('\n'))));
  }
}

std::string scratch_name() {
  std::random_device rd;
  std::mt19937_64 gen((static_cast<std::uint64_t>(rd()) << 32) ^ rd() ^
                      static_cast<std::uint64_t>(Clock::now().time_since_epoch().count()));
  return fmt::format("dbstep_verify_{:012x}", gen() & 0xffffffffffffULL);
}

VerifyProblem problem(Version v, const std::string& identifier, VerifyProblemKind kind,
                      std::string message) {
  VerifyProblem p;
  p.version = v;
  p.identifier = identifier;
  p.kind = kind;
  p.message = std::move(message);
  return p;
}

// Removes a scratch database made by verify() when it is left behind by an exception.
class ScratchGuard {
 public:
  ScratchGuard(Driver& origin, std::string name) : origin_(origin), name_(std::move(name)) {}
  ScratchGuard(const ScratchGuard&) = delete;
  ScratchGuard& operator=(const ScratchGuard&) = delete;
  ~ScratchGuard() {
    if (armed_) {
      try {
        origin_.drop_scratch_database(name_);
      } catch (...) {
        // Best effort on the way out of a failure; the failure itself is what is reported.
      }
    }
  }
  // Drops it now, reporting a failure.
  void drop() {
    armed_ = false;
    origin_.drop_scratch_database(name_);
  }

 private:
  Driver& origin_;
  std::string name_;
  bool armed_ = true;
};

}  // namespace

const char* to_string(VerifyProblemKind kind) {
  switch (kind) {
    case VerifyProblemKind::kNotRestored: return "not_restored";
    case VerifyProblemKind::kDownFailed: return "down_failed";
    case VerifyProblemKind::kUpFailed: return "up_failed";
    case VerifyProblemKind::kReapplyFailed: return "reapply_failed";
    case VerifyProblemKind::kReapplyDiffers: return "reapply_differs";
  }
  return "unknown";
}

VerifyReport verify_on(Migrator& m, const VerifyOptions& options) {
  const auto started = Clock::now();
  VerifyReport report;
  report.scratch = m.driver().describe();
  require_empty(m);
  auto snapshot = [&] { return m.driver().schema_snapshot(); };
  auto stopped = [&] { return options.stop && options.stop->load(); };
  auto finish = [&] {
    report.duration = Clock::now() - started;
    return report;
  };

  const auto& entries = m.index().entries();
  if (options.from) {
    OptVersion below;
    for (const auto& e : entries) {
      if (e.version < *options.from) below = e.version;
    }
    if (below) {
      Result r = m.migrate_to(*below);
      if (!r.ok()) {
        const Version v = r.error->version.value_or(*below);
        const auto* e = m.index().find(v);
        VerifyProblem p = problem(v, e ? e->identifier() : "", VerifyProblemKind::kUpFailed,
                                  fmt::format("migrating up to version {} (below --from {}) "
                                              "failed: {}",
                                              *below, *options.from, r.error->what()));
        p.error = r.error;
        report.problems.push_back(std::move(p));
        report.completed = false;
        return finish();
      }
    }
  }

  // The schema where the previous migration left it, when already known: the snapshot after
  // its up ran again is the one before the next up (one snapshot fewer per migration).
  std::optional<std::string> known;
  for (const auto& e : entries) {
    if (options.from && e.version < *options.from) continue;
    if (stopped()) {
      report.completed = false;
      break;
    }
    const Version v = e.version;
    const std::string& id = e.identifier();
    if (options.on_migration) options.on_migration(v, id);
    const std::string name = fmt::format("migration {} ({})", v, id);

    const std::string before = known ? *known : snapshot();
    known.reset();
    Result up = m.steps(1);
    if (stopped()) {
      report.completed = false;
      break;
    }
    if (!up.ok()) {
      VerifyProblem p = problem(v, id, VerifyProblemKind::kUpFailed,
                                fmt::format("{}: the up failed, so the migrations from here on "
                                            "were not checked: {}",
                                            name, up.error->what()));
      p.error = up.error;
      report.problems.push_back(std::move(p));
      report.completed = false;
      break;
    }
    const std::string after_up = snapshot();

    Result down = m.steps(-1);
    if (stopped()) {
      report.completed = false;
      break;
    }
    if (!down.ok()) {
      VerifyProblem p = problem(v, id, VerifyProblemKind::kDownFailed,
                                fmt::format("{}: the down failed: {}", name, down.error->what()));
      p.error = down.error;
      report.problems.push_back(std::move(p));
      // A down that ran outside a transaction may have left the version dirty; the schema is
      // then whatever it did, and the next migrations are checked from there.
      if (m.state().dirty) {
        m.force(v);
      } else {
        known = after_up;  // the down rolled back: the schema is the up's
      }
      report.checked.push_back(v);
      continue;
    }
    const std::string after_down = snapshot();
    const bool restored = after_down == before;
    if (!restored) {
      VerifyProblem p = problem(
          v, id, VerifyProblemKind::kNotRestored,
          e.down ? fmt::format("{}: {} does not restore the schema the up found", name,
                               e.down->name)
                 : fmt::format("{}: it has no down file, so going down does not restore the "
                               "schema the up found",
                               name));
      p.difference = diff_snapshots(before, after_down, fmt::format("before {} up", v),
                                    fmt::format("after {} up and down", v));
      report.problems.push_back(std::move(p));
    }

    Result again = m.steps(1);
    if (stopped()) {
      report.completed = false;
      break;
    }
    if (!again.ok()) {
      VerifyProblem p = problem(v, id, VerifyProblemKind::kReapplyFailed,
                                fmt::format("{}: the up failed when run again after the down: {}",
                                            name, again.error->what()));
      p.error = again.error;
      report.problems.push_back(std::move(p));
      // Start over at this version, so the next migrations are still checked.
      m.drop();
      Result rebuild = m.migrate_to(v);
      report.checked.push_back(v);
      if (!rebuild.ok()) {
        VerifyProblem q = problem(v, id, VerifyProblemKind::kUpFailed,
                                  fmt::format("rebuilding the scratch database up to version {} "
                                              "failed, so the migrations after it were not "
                                              "checked: {}",
                                              v, rebuild.error->what()));
        q.error = rebuild.error;
        report.problems.push_back(std::move(q));
        report.completed = false;
        break;
      }
      continue;
    }
    if (restored) {
      const std::string after_again = snapshot();
      if (after_again != after_up) {
        VerifyProblem p = problem(v, id, VerifyProblemKind::kReapplyDiffers,
                                  fmt::format("{}: the up run again after its down gives another "
                                              "schema than the first time",
                                              name));
        p.difference = diff_snapshots(after_up, after_again, fmt::format("after {} up", v),
                                      fmt::format("after {} up, down and up again", v));
        report.problems.push_back(std::move(p));
      }
      known = after_again;
    }
    report.checked.push_back(v);
  }
  return finish();
}

VerifyReport verify(const Registry& registry, std::string_view database_url,
                    std::string_view source_url, const VerifyOptions& options,
                    std::optional<std::string> scratch_url) {
  MigratorOptions mo;
  mo.lock_timeout = options.lock_timeout;
  mo.stop = options.stop;
  mo.record_history = false;  // a throwaway database: only the schema matters
  if (scratch_url) {
    Migrator m = Migrator::open(registry, *scratch_url, source_url, mo);
    require_empty(m);  // before anything is changed: a database that is not empty stays as is
    if (options.on_scratch) options.on_scratch(&m);
    VerifyReport report;
    try {
      report = verify_on(m, options);
    } catch (...) {
      if (options.on_scratch) options.on_scratch(nullptr);
      try {
        m.drop();
      } catch (...) {
        // The first failure is the one to report.
      }
      throw;
    }
    if (options.on_scratch) options.on_scratch(nullptr);
    m.drop();
    return report;
  }
  // The source first: a bad migrations folder is reported before a database is made.
  auto source = registry.open_source(source_url);
  auto origin = registry.open_driver(database_url);
  const std::string name = scratch_name();
  const std::string url = origin->create_scratch_database(name);
  ScratchGuard guard(*origin, name);
  VerifyReport report;
  {
    Migrator m(std::move(source), registry.open_driver(url), mo);
    if (options.on_scratch) options.on_scratch(&m);
    try {
      report = verify_on(m, options);
    } catch (...) {
      if (options.on_scratch) options.on_scratch(nullptr);
      throw;
    }
    if (options.on_scratch) options.on_scratch(nullptr);
  }  // the scratch database's connection is closed before it is dropped
  guard.drop();
  return report;
}

}  // namespace dbstep
