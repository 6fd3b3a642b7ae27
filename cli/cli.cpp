#include "cli/cli.hpp"

#include <unistd.h>

#include <atomic>
#include <cctype>
#include <charconv>
#include <csignal>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <optional>
#include <stdexcept>
#include <string_view>

#include <boost/program_options.hpp>
#include <fmt/format.h>
#include <fmt/ostream.h>

#include "core/error.hpp"
#include "core/migrator.hpp"
#include "core/registry.hpp"
#include "core/url.hpp"
#include "dbstep/dbstep.hpp"
#include "dbstep_embedded/default_migrations.hpp"

#ifndef DBSTEP_VERSION
#define DBSTEP_VERSION "dev"
#endif

namespace dbstep::cli {

namespace {

namespace po = boost::program_options;
using namespace std::chrono_literals;

constexpr const char* kDefaultDatabase = "sqlite://dbstep.db";
constexpr const char* kDefaultSource = "embedded://";

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Settings {
  std::string database;
  std::string source;
  std::string path;  // golang-migrate's -path DIR
  double lock_timeout_s = 15;
  bool yes = false;
  bool all = false;
  bool verbose = false;
  bool single_transaction = false;
  bool help = false;
  bool version = false;
  std::vector<std::string> positional;  // command and its arguments
};

// ---------------------------------------------------------------------------------------------
// Argument parsing

// golang-migrate spells long options with one dash (-database URL, -path DIR, down -all,
// drop -f). They are accepted as the same options with two.
std::string normalize_option(const std::string& arg) {
  static const std::vector<std::string> long_names = {
      "database", "source", "path", "lock-timeout", "verbose", "help", "version", "all",
      "prefetch", "yes"};
  if (arg.size() > 2 && arg[0] == '-' && arg[1] != '-') {
    std::string_view body = std::string_view(arg).substr(1);
    std::string_view name = body.substr(0, body.find('='));
    for (const auto& n : long_names) {
      if (name == n) return "-" + arg;
    }
  }
  if (arg == "-f") return "--yes";
  return arg;
}

bool is_negative_number(std::string_view s) {
  return s.size() > 1 && s[0] == '-' && s.find_first_not_of("0123456789", 1) == std::string_view::npos;
}

po::options_description option_descriptions() {
  po::options_description opts("Options");
  opts.add_options()
      ("database,d", po::value<std::string>(),
       "database URL (env DATABASE_URL; default sqlite://dbstep.db)")
      ("source,s", po::value<std::string>(),
       "migrations: a folder path or a source URL (env DBSTEP_SOURCE; default embedded://)")
      ("path", po::value<std::string>(), "folder of migrations (golang-migrate's -path)")
      ("lock-timeout", po::value<double>(), "seconds to wait for the migration lock (default 15)")
      ("yes,y", po::bool_switch(), "do not ask for confirmation (rollback all, drop)")
      ("all", po::bool_switch(), "with down: roll back everything without asking")
      ("single-transaction", po::bool_switch(),
       "migrate/rollback/goto: apply every migration of the run in one transaction, all or none")
      ("verbose,v", po::bool_switch(), "say more: source, database, lock wait, failing statement")
      ("prefetch", po::value<unsigned>(), "accepted for golang-migrate compatibility; ignored")
      ("help,h", po::bool_switch(), "show help (dbstep COMMAND --help for one command)")
      ("version", po::bool_switch(), "show dbstep's version");
  return opts;
}

Settings parse_args(const std::vector<std::string>& args) {
  static const std::vector<std::string> with_value = {"-d", "--database", "-s", "--source",
                                                      "--path", "--lock-timeout", "--prefetch"};
  std::vector<std::string> options;
  Settings s;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& raw = args[i];
    if (raw == "--") {
      s.positional.insert(s.positional.end(), args.begin() + static_cast<long>(i) + 1, args.end());
      break;
    }
    if (raw.size() < 2 || raw[0] != '-' || is_negative_number(raw)) {
      s.positional.push_back(raw);
      continue;
    }
    std::string opt = normalize_option(raw);
    options.push_back(opt);
    if (std::find(with_value.begin(), with_value.end(), opt) != with_value.end()) {
      if (i + 1 >= args.size()) throw UsageError(fmt::format("option {} needs a value", raw));
      options.push_back(args[++i]);
    }
  }

  po::variables_map vm;
  try {
    po::store(po::command_line_parser(options)
                  .options(option_descriptions())
                  .style(po::command_line_style::default_style &
                         ~po::command_line_style::allow_guessing)
                  .run(),
              vm);
    po::notify(vm);
  } catch (const po::error& e) {
    throw UsageError(e.what());
  }
  auto env = [](const char* name) -> std::string {
    const char* v = std::getenv(name);
    return v ? v : "";
  };
  if (vm.count("database")) s.database = vm["database"].as<std::string>();
  if (s.database.empty()) s.database = env("DATABASE_URL");
  if (s.database.empty()) s.database = kDefaultDatabase;
  if (vm.count("path")) s.path = vm["path"].as<std::string>();
  if (vm.count("source")) s.source = vm["source"].as<std::string>();
  // golang-migrate: -path DIR means -source file://DIR, and an explicit -source wins.
  if (s.source.empty() && !s.path.empty()) s.source = s.path;
  if (s.source.empty()) s.source = env("DBSTEP_SOURCE");
  if (s.source.empty()) s.source = kDefaultSource;
  if (vm.count("lock-timeout")) {
    s.lock_timeout_s = vm["lock-timeout"].as<double>();
    if (!(s.lock_timeout_s >= 0)) throw UsageError("--lock-timeout must be 0 or more seconds");
  }
  s.yes = vm["yes"].as<bool>();
  s.all = vm["all"].as<bool>();
  s.verbose = vm["verbose"].as<bool>();
  s.single_transaction = vm["single-transaction"].as<bool>();
  s.help = vm["help"].as<bool>();
  s.version = vm["version"].as<bool>();
  return s;
}

std::uint64_t parse_count(const std::string& text, std::string_view what) {
  std::uint64_t n = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc() || p != text.data() + text.size()) {
    throw UsageError(fmt::format("{} must be \"all\" or a number of migrations, not \"{}\"", what,
                                 text));
  }
  return n;
}

Version parse_version(const std::string& text, std::string_view what) {
  Version v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || p != text.data() + text.size()) {
    throw UsageError(fmt::format("{} must be a migration version (a number), not \"{}\"", what,
                                 text));
  }
  return v;
}

// ---------------------------------------------------------------------------------------------
// Output

std::string format_duration(std::chrono::nanoseconds d) {
  double ms = std::chrono::duration<double, std::milli>(d).count();
  if (ms < 1000) return fmt::format("{:.1f} ms", ms);
  return fmt::format("{:.2f} s", ms / 1000);
}

// Prints a run as it happens; the CLI's only view into the engine is this Observer.
class ConsoleObserver final : public Observer {
 public:
  ConsoleObserver(std::ostream& out, bool verbose) : out_(out), verbose_(verbose) {}

  void on_locked(std::chrono::nanoseconds waited) override {
    if (verbose_ || waited > 1s) {
      fmt::print(out_, "Acquired the migration lock after {}\n", format_duration(waited));
    }
  }

  void on_plan(const Plan& plan) override {
    if (plan.replanned) {
      fmt::print(out_, "Another process moved the database to version {} meanwhile\n",
                 to_string(plan.from));
    }
    if (plan.steps.empty()) return;
    bool up = plan.steps.front().direction == Direction::kUp;
    fmt::print(out_, "{} {} {}migration(s) from version {} to {}\n",
               up ? "Running" : "Rolling back", plan.steps.size(), up ? "pending " : "",
               to_string(plan.from), to_string(plan.to()));
    out_.flush();
  }

  void on_step_started(const PlannedStep& step) override {
    if (verbose_) {
      fmt::print(out_, "  {} migration {}: {} ...\n",
                 step.direction == Direction::kUp ? "applying" : "rolling back", step.version,
                 step.identifier);
      out_.flush();
    }
  }

  void on_step_finished(const AppliedStep& step) override {
    bool up = step.direction == Direction::kUp;
    std::string note = step.file.empty()
                           ? fmt::format(", no {} file: only the version moved", up ? "up" : "down")
                           : "";
    fmt::print(out_, "{} migration {}: {} ({}{})\n", up ? "Applied" : "Rolled back", step.version,
               step.identifier, format_duration(step.duration), note);
    out_.flush();
  }

 private:
  std::ostream& out_;
  bool verbose_;
};

void print_error(std::ostream& err, const Error& e, bool verbose) {
  fmt::print(err, "error: {}\n", e.what());
  if (!e.statement.empty()) fmt::print(err, "  statement: {}\n", e.statement);
  if (verbose) fmt::print(err, "  (code: {})\n", to_string(e.code()));
}

// ---------------------------------------------------------------------------------------------
// Stopping on SIGINT/SIGTERM. The first one raises the run's stop flag (MigratorOptions::stop): a
// wait for the lock ends at once, the running migration finishes, no other starts, and the
// command exits 128 + the signal. The second one has the library abort the running statement
// (Migrator::interrupt: PostgreSQL's cancel request, sqlite3_interrupt), so that the migration's
// transaction rolls back on the server instead of committing after we are gone, and ends the
// process at once with 128 + the signal: the one exit outside run()'s return, as the default
// action of the signal would be.

std::atomic<bool> g_stop{false};
volatile std::sig_atomic_t g_signal = 0;
std::atomic<Migrator*> g_migrator{nullptr};  // the running command's, while its run may be going

extern "C" void on_signal(int sig) {
  // Async-signal-safe calls only: write, the atomics, Migrator::interrupt, _exit.
  if (g_stop.exchange(true)) {
    const char msg[] = "\nCancelling the running migration and exiting\n";
    [[maybe_unused]] auto n = ::write(STDERR_FILENO, msg, sizeof msg - 1);
    if (Migrator* m = g_migrator.load()) m->interrupt();
    ::_exit(128 + sig);
  }
  g_signal = sig;
  const char msg[] =
      "\nStopping: a running migration finishes, no other starts (press Ctrl-C again to cancel "
      "it)\n";
  [[maybe_unused]] auto n = ::write(STDERR_FILENO, msg, sizeof msg - 1);
}

class SignalScope {
 public:
  explicit SignalScope(Migrator& migrator) {
    g_stop.store(false);
    g_signal = 0;
    g_migrator.store(&migrator);
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    // One handler at a time: a SIGTERM must not interrupt the SIGINT handler half way.
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGINT);
    sigaddset(&sa.sa_mask, SIGTERM);
    sigaction(SIGINT, &sa, &old_int_);
    sigaction(SIGTERM, &sa, &old_term_);
  }
  ~SignalScope() {
    sigaction(SIGINT, &old_int_, nullptr);
    sigaction(SIGTERM, &old_term_, nullptr);
    g_migrator.store(nullptr);
  }

 private:
  struct sigaction old_int_ {};
  struct sigaction old_term_ {};
};

// ---------------------------------------------------------------------------------------------
// Commands

struct Context {
  Settings settings;
  std::ostream& out;
  std::ostream& err;
};

bool confirm(Context& ctx, const std::string& question) {
  if (ctx.settings.yes || !::isatty(STDIN_FILENO)) return true;
  fmt::print(ctx.out, "{} [y/N] ", question);
  ctx.out.flush();
  std::string answer;
  if (!std::getline(std::cin, answer)) return false;
  return answer == "y" || answer == "Y" || answer == "yes" || answer == "YES";
}

Migrator open_migrator(Context& ctx, Observer* observer) {
  Registry registry;
  register_builtin(registry, {&dbstep_embedded::default_migrations()});
  MigratorOptions options;
  options.lock_timeout = std::chrono::milliseconds(
      static_cast<std::int64_t>(ctx.settings.lock_timeout_s * 1000));
  options.stop = &g_stop;
  options.observer = observer;
  options.single_transaction = ctx.settings.single_transaction;
  Migrator m = Migrator::open(registry, ctx.settings.database, ctx.settings.source, options);
  if (ctx.settings.verbose) {
    fmt::print(ctx.out, "Using {} ({} migration versions) and {}\n", m.source().describe(),
               m.index().size(), m.driver().describe());
  }
  return m;
}

// Reports a finished run and turns it into the exit code.
int report(Context& ctx, const Result& r, Direction way) {
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
    return 128 + (g_signal ? static_cast<int>(g_signal) : SIGINT);
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

std::optional<std::uint64_t> count_arg(Context& ctx, const std::string& command, bool all_default) {
  const auto& pos = ctx.settings.positional;
  if (pos.size() > 2) throw UsageError(fmt::format("{}: too many arguments", command));
  if (pos.size() < 2) {
    if (all_default) return std::nullopt;
    throw UsageError(fmt::format("{} needs \"all\" or a number of migrations", command));
  }
  if (pos[1] == "all") return std::nullopt;
  return parse_count(pos[1], fmt::format("the argument of {}", command));
}

int cmd_migrate(Context& ctx) {
  const std::string command = ctx.settings.positional[0];
  if (ctx.settings.all) throw UsageError(fmt::format("{} does not take --all", command));
  auto count = count_arg(ctx, command, /*all_default=*/true);
  ConsoleObserver observer(ctx.out, ctx.settings.verbose);
  Migrator m = open_migrator(ctx, &observer);
  SignalScope signals(m);
  Result r = count ? m.steps(static_cast<std::int64_t>(std::min<std::uint64_t>(*count, INT64_MAX)))
                   : m.up();
  return report(ctx, r, Direction::kUp);
}

int cmd_rollback(Context& ctx) {
  const std::string command = ctx.settings.positional[0];
  std::optional<std::uint64_t> count;
  bool ask = false;
  if (ctx.settings.all) {
    // golang-migrate's down -all: everything, no question, no other argument.
    if (ctx.settings.positional.size() > 1) {
      throw UsageError("-all cannot be used with other arguments");
    }
  } else {
    // rollback needs an argument; golang-migrate's down alone means all (after asking).
    count = count_arg(ctx, command, /*all_default=*/command == "down");
    ask = !count;
  }
  ConsoleObserver observer(ctx.out, ctx.settings.verbose);
  Migrator m = open_migrator(ctx, &observer);
  if (ask) {
    DbState s = m.state();
    if (s.version && !confirm(ctx, fmt::format("Roll back every migration of {} (now at version "
                                               "{})? This runs the down migrations.",
                                               m.driver().describe(), to_string(s.version)))) {
      fmt::print(ctx.err, "Not rolling back: nothing was changed\n");
      return kExitFailed;
    }
  }
  SignalScope signals(m);
  Result r = count ? m.steps(-static_cast<std::int64_t>(std::min<std::uint64_t>(*count, INT64_MAX)))
                   : m.down();
  return report(ctx, r, Direction::kDown);
}

int cmd_goto(Context& ctx) {
  const auto& pos = ctx.settings.positional;
  if (pos.size() != 2) throw UsageError("goto needs one argument: the version to move to");
  Version v = parse_version(pos[1], "the argument of goto");
  ConsoleObserver observer(ctx.out, ctx.settings.verbose);
  Migrator m = open_migrator(ctx, &observer);
  SignalScope signals(m);
  Result r = m.migrate_to(v);
  Direction way = !r.steps.empty() ? r.steps.front().direction : Direction::kUp;
  if (r.ok() && r.steps.empty() && !r.stopped) {
    fmt::print(ctx.out, "Database is already at version {}\n", to_string(r.to));
    return kExitOk;
  }
  return report(ctx, r, way);
}

int cmd_version(Context& ctx) {
  if (ctx.settings.positional.size() > 1) throw UsageError("version takes no argument");
  Migrator m = open_migrator(ctx, nullptr);
  DbState s = m.state();
  if (!s.version && !s.dirty) {
    fmt::print(ctx.out, "none (no migration applied yet)\n");
  } else {
    fmt::print(ctx.out, "{}{}\n", to_string(s.version), s.dirty ? " (dirty)" : "");
  }
  return kExitOk;
}

int cmd_force(Context& ctx) {
  const auto& pos = ctx.settings.positional;
  if (pos.size() != 2) throw UsageError("force needs one argument: a version, or -1 / none");
  OptVersion v;
  if (pos[1] != "-1" && pos[1] != "none") {
    if (is_negative_number(pos[1])) throw UsageError("argument V must be >= -1");
    v = parse_version(pos[1], "the argument of force");
  }
  Migrator m = open_migrator(ctx, nullptr);
  m.force(v);
  fmt::print(ctx.out, "Version set to {} (clean); no SQL was run\n", to_string(v));
  return kExitOk;
}

int cmd_drop(Context& ctx) {
  if (ctx.settings.positional.size() > 1) throw UsageError("drop takes no argument");
  if (!ctx.settings.yes && !::isatty(STDIN_FILENO)) {
    throw UsageError("drop removes everything in the database: pass --yes to run it without a "
                     "terminal");
  }
  Migrator m = open_migrator(ctx, nullptr);
  if (!confirm(ctx, fmt::format("Drop everything in {}?", m.driver().describe()))) {
    fmt::print(ctx.err, "Not dropping: nothing was changed\n");
    return kExitFailed;
  }
  m.drop();
  fmt::print(ctx.out, "Dropped everything in {}\n", m.driver().describe());
  return kExitOk;
}

struct Command {
  std::vector<std::string> names;
  const char* usage;
  const char* help;
  std::function<int(Context&)> run;
};

const std::vector<Command>& commands() {
  static const std::vector<Command> kCommands = {
      {{"migrate", "up"}, "migrate [all|N]   (alias: up [N])",
       "Apply every pending migration (all, the default) or the next N, each in its own "
       "transaction.",
       cmd_migrate},
      {{"rollback", "down"}, "rollback all|N   (alias: down [N] [-all])",
       "Roll back every applied migration (asks first on a terminal unless --yes) or the last N. "
       "`down` with no argument means all, as in golang-migrate.",
       cmd_rollback},
      {{"goto"}, "goto V", "Move up or down to exactly version V.", cmd_goto},
      {{"version"}, "version",
       "Print the database's version, with (dirty) if a migration failed outside a transaction.",
       cmd_version},
      {{"force"}, "force V",
       "Record version V (or -1/none) and clear the dirty flag without running any SQL.",
       cmd_force},
      {{"drop"}, "drop",
       "Remove every table and view (and, on PostgreSQL, every object) in the database. Asks "
       "first on a terminal; needs --yes otherwise.",
       cmd_drop},
  };
  return kCommands;
}

void print_help(std::ostream& os) {
  fmt::print(os,
             "dbstep {}: apply and reverse versioned SQL migrations (golang-migrate compatible)\n\n"
             "Usage: dbstep [options] COMMAND [args]\n\nCommands:\n",
             DBSTEP_VERSION);
  for (const auto& c : commands()) fmt::print(os, "  {:<42} {}\n", c.usage, c.help);
  os << "\n" << option_descriptions() << "\n";
  fmt::print(os,
             "Databases: sqlite://PATH, sqlite3://PATH, postgres://USER@HOST/DB\n"
             "Sources:   a folder path, file://DIR, embedded:// (dbstep's built-in example schema)\n"
             "Exit codes: 0 ok (nothing to do included), 1 failed, 2 usage error, 4 fewer "
             "migrations than requested, 130/143 stopped by SIGINT/SIGTERM\n");
}

}  // namespace

int run(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  // A file-size limit (ulimit -f) would kill the process with SIGXFSZ and no message. Ignored,
  // the write fails with EFBIG instead and the database's error is reported like any other.
  std::signal(SIGXFSZ, SIG_IGN);
  Settings settings;
  try {
    settings = parse_args(args);
  } catch (const UsageError& e) {
    fmt::print(err, "dbstep: {}\nRun 'dbstep --help' for usage.\n", e.what());
    return kExitUsage;
  }
  if (settings.version) {
    fmt::print(out, "dbstep {}\n", DBSTEP_VERSION);
    return kExitOk;
  }
  if (settings.positional.empty()) {
    print_help(settings.help ? out : err);
    return settings.help ? kExitOk : kExitUsage;
  }
  const Command* command = nullptr;
  for (const auto& c : commands()) {
    if (std::find(c.names.begin(), c.names.end(), settings.positional[0]) != c.names.end()) {
      command = &c;
    }
  }
  if (!command) {
    fmt::print(err, "dbstep: unknown command \"{}\"\nRun 'dbstep --help' for usage.\n",
               settings.positional[0]);
    return kExitUsage;
  }
  if (settings.help) {
    fmt::print(out, "Usage: dbstep [options] {}\n\n{}\n\n", command->usage, command->help);
    out << option_descriptions();
    return kExitOk;
  }
  Context ctx{std::move(settings), out, err};
  try {
    return command->run(ctx);
  } catch (const UsageError& e) {
    fmt::print(err, "dbstep: {}\nRun 'dbstep {} --help' for usage.\n", e.what(),
               ctx.settings.positional[0]);
    return kExitUsage;
  } catch (const Error& e) {
    print_error(err, e, ctx.settings.verbose);
    return kExitFailed;
  } catch (const std::exception& e) {
    fmt::print(err, "error: {}\n", redact_secrets(e.what()));
    return kExitFailed;
  }
}

}  // namespace dbstep::cli
