#include "cli/run_report.hpp"

#include <cctype>

#include <fmt/format.h>
#include <fmt/ostream.h>

#include "cli/cli.hpp"
#include "cli/json_output.hpp"
#include "cli/signals.hpp"

namespace dbstep::cli {

ConsoleMode console_mode(const Context& ctx) {
  return ConsoleMode{ctx.settings.verbose, ctx.settings.quiet, ctx.settings.json, ctx.terminal};
}

int report_run(Context& ctx, ConsoleObserver& observer, const Result& r, Direction way,
               const std::string& nothing) {
  observer.finish();
  const bool stopped_waiting = r.error && r.error->code() == ErrorCode::kStopped;
  // Under --json stdout holds the one document; people's lines (errors, warnings) still go to
  // stderr.
  const bool json = ctx.settings.json;
  const bool say = !json && !ctx.settings.quiet;
  if (json) write_run_json(ctx.out, ctx.settings.positional[0], r);
  if (r.error && !stopped_waiting) {
    if (say && !r.steps.empty()) {
      fmt::print(ctx.out, "{} {} migration(s) before the failure\n",
                 way == Direction::kUp ? "Applied" : "Rolled back", r.steps.size());
    }
    print_error(ctx.err, *r.error, ctx.settings.verbose);
    return kExitFailed;
  }
  if (r.stopped || stopped_waiting) {
    if (stopped_waiting) {
      std::string why = r.error->what();  // "stopped after 2 s waiting for the migration lock ..."
      if (!why.empty()) why[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(why[0])));
      fmt::print(ctx.err, "{}\n", why);
    } else {
      fmt::print(ctx.err, "Stopped as asked: the database is at version {}; run the command again "
                          "to continue\n",
                 to_string(r.to));
    }
    return stopped_exit_code();
  }
  if (r.steps.empty() && r.short_by == 0) {
    if (!say) return kExitOk;
    if (r.concurrent) {
      fmt::print(ctx.out, "Another process applied the migrations; the database is at version {}\n",
                 to_string(r.to));
    } else if (!nothing.empty()) {
      fmt::print(ctx.out, "{}\n", nothing);
    } else if (way == Direction::kUp) {
      fmt::print(ctx.out, "Database is up to date (version {})\n", to_string(r.to));
    } else {
      fmt::print(ctx.out, "Nothing to roll back (version {})\n", to_string(r.to));
    }
    return kExitOk;
  }
  if (say && !r.steps.empty()) {
    fmt::print(ctx.out, "Database is now at version {} ({} migration(s) in {})\n", to_string(r.to),
               r.steps.size(), format_duration(r.duration));
  }
  if (r.short_by > 0) {
    fmt::print(ctx.err,
               "warning: {} fewer migration(s) than requested were available {}; the database is "
               "at version {}\n",
               r.short_by, way == Direction::kUp ? "to apply" : "to roll back", to_string(r.to));
    return kExitShort;
  }
  return kExitOk;
}

int run_or_dry_run(Context& ctx, const RunCommand& command) {
  ConsoleObserver observer(ctx.out, ctx.err, console_mode(ctx));
  Migrator m = open_migrator(ctx, &observer);
  const std::string& name = ctx.settings.positional[0];
  if (ctx.settings.dry_run) {
    const DryRun dry = command.dry_run(m);
    if (ctx.settings.json) {
      write_dry_run_json(ctx.out, name, dry);
    } else if (!ctx.settings.quiet) {
      print_dry_run(ctx.out, dry, name, m.driver().describe());
    }
    // The exit code the run would end with.
    return dry.plan.short_by > 0 ? kExitShort : kExitOk;
  }
  if (command.before_run) {
    if (int code = command.before_run(m); code != kExitOk) return code;
  }
  SignalScope signals(m);
  const Result r = command.run(m);
  const Direction way = r.steps.empty() ? command.way : r.steps.front().direction;
  return report_run(ctx, observer, r, way, command.nothing ? command.nothing(r) : "");
}

}  // namespace dbstep::cli
