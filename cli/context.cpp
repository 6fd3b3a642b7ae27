// The pieces every command shares: opening the Migrator the settings name, and asking.

#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <iostream>

#include <fmt/format.h>
#include <fmt/ostream.h>

#include "cli/command.hpp"
#include "cli/signals.hpp"
#include "core/registry.hpp"
#include "core/sql_text.hpp"
#include "core/url.hpp"
#include "dbstep/dbstep.hpp"
#include "dbstep_embedded/default_migrations.hpp"

namespace dbstep::cli {

Migrator open_migrator(Context& ctx, Observer* observer) {
  if (ctx.settings.source.empty()) {
    // Never dbstep's example schema on a database the user named.
    throw UsageError(fmt::format(
        "no migrations named for {}: give their folder with -s DIR (golang-migrate's -path DIR "
        "or -source file://DIR also work) or set DBSTEP_SOURCE. dbstep's built-in example "
        "migrations run only when neither a database nor a source is named (or with -s "
        "embedded://)",
        redact_secrets(ctx.settings.database)));
  }
  Registry registry;
  register_builtin(registry, {&dbstep_embedded::default_migrations()});
  MigratorOptions options;
  options.lock_timeout = std::chrono::milliseconds(
      static_cast<std::int64_t>(ctx.settings.lock_timeout_s * 1000));
  options.stop = stop_flag();
  options.observer = observer;
  options.single_transaction = ctx.settings.single_transaction;
  options.ignore_checksums = ctx.settings.ignore_checksums;
  options.out_of_order = ctx.settings.out_of_order;
  options.backup = ctx.settings.backup;
  Migrator m = Migrator::open(registry, ctx.settings.database, ctx.settings.source, options);
  // The database's notices (RAISE NOTICE / WARNING in a migration) on stderr, with the file.
  m.driver().set_notice_handler([&err = ctx.err](const DatabaseNotice& n) {
    fmt::print(err, "{}: {}: {}\n", ascii_lower(n.severity), n.file, n.message);
  });
  if (ctx.settings.verbose) {
    // Under --json, stdout holds the one JSON document.
    fmt::print(ctx.settings.json ? ctx.err : ctx.out, "Using {} ({} migration versions) and {}\n", m.source().describe(),
               m.index().size(), m.driver().describe());
  }
  return m;
}

bool confirm(Context& ctx, const std::string& question) {
  if (ctx.settings.yes || !::isatty(STDIN_FILENO)) return true;
  fmt::print(ctx.out, "{} [y/N] ", question);
  ctx.out.flush();
  std::string answer;
  if (!std::getline(std::cin, answer)) return false;
  return answer == "y" || answer == "Y" || answer == "yes" || answer == "YES";
}

}  // namespace dbstep::cli
