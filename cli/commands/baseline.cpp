// baseline V [--force]: mark a database whose schema was made without dbstep as at version V,
// recording the source's migrations up to V as applied without running them
// (Migrator::baseline()). --force: even when the database already has a version.

#include <algorithm>

#include <fmt/format.h>
#include <fmt/ostream.h>

#include "cli/cli.hpp"
#include "cli/command.hpp"

namespace dbstep::cli {

int cmd_baseline(Context& ctx) {
  const auto& pos = ctx.settings.positional;
  if (pos.size() != 2) throw UsageError("baseline needs one argument: the version to mark");
  const Version v = parse_version(pos[1], "the argument of baseline");
  Migrator m = open_migrator(ctx, nullptr);
  m.baseline(v, /*over_existing=*/ctx.settings.force);
  const auto& entries = m.index().entries();
  const auto marked = std::count_if(entries.begin(), entries.end(),
                                    [&](const auto& e) { return e.version <= v; });
  fmt::print(ctx.out,
             "Baseline: {} is now at version {}; {} migration(s) up to {} recorded as applied "
             "(history kind baseline); no SQL was run\n",
             m.driver().describe(), v, marked, v);
  return kExitOk;
}

}  // namespace dbstep::cli
