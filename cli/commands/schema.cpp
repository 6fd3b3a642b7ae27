// schema dump | schema diff FILE [--json]: the database's schema as a saved text, and drift
// from one. The snapshot, the dump format and the diff live in core (core/schema_snapshot.hpp);
// this file only reads the file and prints.

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <fmt/ostream.h>
#include <nlohmann/json.hpp>

#include "cli/cli.hpp"
#include "cli/command.hpp"
#include "core/registry.hpp"
#include "core/schema_snapshot.hpp"
#include "dbstep/dbstep.hpp"
#include "dbstep_embedded/default_migrations.hpp"

namespace dbstep::cli {

namespace {

std::unique_ptr<Driver> open_database(const Context& ctx) {
  Registry registry;
  register_builtin(registry, {&dbstep_embedded::default_migrations()});
  return registry.open_driver(ctx.settings.database);
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("cannot read the schema dump {}: {}", path, std::strerror(errno)));
  }
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

int cmd_schema(Context& ctx) {
  const auto& pos = ctx.settings.positional;
  const std::string sub = pos.size() > 1 ? pos[1] : "";
  if (sub == "dump") {
    if (pos.size() > 2) throw UsageError("schema dump takes no argument (redirect it: > FILE)");
    auto driver = open_database(ctx);
    const std::string dump = schema_dump(*driver);
    if (ctx.settings.json) {
      ctx.out << nlohmann::json{{"database", driver->describe()}, {"dump", dump}}.dump(2) << "\n";
    } else {
      ctx.out << dump;
    }
    return kExitOk;
  }
  if (sub == "diff") {
    if (pos.size() != 3) throw UsageError("schema diff needs one argument: the dump FILE");
    const std::string text = read_file(pos[2]);
    auto driver = open_database(ctx);
    const SchemaDrift drift = compare_with_dump(*driver, text, pos[2]);
    if (ctx.settings.json) {
      nlohmann::json doc{{"file", pos[2]},
                         {"database", driver->describe()},
                         {"matches", drift.matches()},
                         {"difference", nullptr}};
      if (!drift.matches()) doc["difference"] = drift.difference;
      ctx.out << doc.dump(2) << "\n";
    } else if (drift.matches()) {
      fmt::print(ctx.out, "The schema of {} matches {}\n", driver->describe(), pos[2]);
    } else {
      ctx.out << drift.difference;
      fmt::print(ctx.err, "The schema of {} differs from {} (lines with - are in the dump, + in "
                          "the database)\n",
                 driver->describe(), pos[2]);
    }
    return drift.matches() ? kExitOk : kExitFailed;
  }
  throw UsageError(sub.empty()
                       ? std::string("schema needs a subcommand: dump, or diff FILE")
                       : fmt::format("unknown schema subcommand \"{}\" (dump, or diff FILE)", sub));
}

}  // namespace dbstep::cli
