#include "cli/run_report.hpp"

#include <cctype>

#include <fmt/format.h>
#include <fmt/ostream.h>

#include "cli/cli.hpp"
#include "cli/human_output.hpp"
#include "cli/signals.hpp"

namespace dbstep::cli {

int report_run(Context& ctx, const Result& r, Direction way) {
  const bool stopped_waiting = r.error && r.error->code() == ErrorCode::kStopped;
  if (r.error && !stopped_waiting) {
    if (!r.steps.empty()) {
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
    if (r.concurrent) {
      fmt::print(ctx.out, "Another process applied the migrations; the database is at version {}\n",
                 to_string(r.to));
    } else if (way == Direction::kUp) {
      fmt::print(ctx.out, "Database is up to date (version {})\n", to_string(r.to));
    } else {
      fmt::print(ctx.out, "Nothing to roll back (version {})\n", to_string(r.to));
    }
    return kExitOk;
  }
  if (!r.steps.empty()) {
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

}  // namespace dbstep::cli
