// repair [--force V]: accept the current checksums of applied migration files that were edited
// (after a reviewed, deliberate edit); with --force V also set version V and clear the dirty
// flag, as force does (Migrator::repair()).

#include <fmt/format.h>
#include <fmt/ostream.h>

#include "cli/cli.hpp"
#include "cli/command.hpp"

namespace dbstep::cli {

int cmd_repair(Context& ctx) {
  const auto& pos = ctx.settings.positional;
  if (pos.size() > 2) throw UsageError("repair: too many arguments");
  std::optional<OptVersion> dirty_version;
  if (ctx.settings.force) {
    if (pos.size() != 2) {
      throw UsageError("repair --force needs the version to record: repair --force V (or -1 / "
                       "none)");
    }
    if (pos[1] != "-1" && pos[1] != "none") {
      if (is_negative_number(pos[1])) throw UsageError("argument V must be >= -1");
      dirty_version = OptVersion(parse_version(pos[1], "the argument of repair --force"));
    } else {
      dirty_version = OptVersion();
    }
  } else if (pos.size() == 2) {
    throw UsageError(fmt::format("repair {0}: a version is taken only with --force (repair "
                                 "--force {0} records it and clears the dirty flag)",
                                 pos[1]));
  }
  Migrator m = open_migrator(ctx, nullptr);
  const RepairResult result = m.repair(dirty_version);
  for (Version v : result.accepted) {
    const auto* entry = m.index().find(v);
    const std::string file = entry && entry->up ? entry->up->name : std::to_string(v);
    fmt::print(ctx.out, "Accepted the edit of {} (migration {}): its current checksum is recorded\n",
               file, v);
  }
  if (dirty_version) {
    fmt::print(ctx.out, "Version set to {} (clean){}; no SQL was run\n", to_string(*dirty_version),
               result.cleared_dirty ? ", the dirty flag cleared" : "");
  } else if (result.accepted.empty()) {
    fmt::print(ctx.out, "Nothing to repair: no applied migration file was edited\n");
  }
  if (!dirty_version) {
    const DbState s = m.state();
    if (s.dirty) {
      fmt::print(ctx.err,
                 "note: the database is still dirty at version {}: repair its schema by hand, then "
                 "run `dbstep repair --force VERSION` with the version it is really at\n",
                 to_string(s.version));
    }
  }
  return kExitOk;
}

}  // namespace dbstep::cli
