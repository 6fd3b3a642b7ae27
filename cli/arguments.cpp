#include "cli/arguments.hpp"

#include <algorithm>
#include <charconv>
#include <cstdlib>

#include <boost/program_options.hpp>
#include <fmt/format.h>

namespace dbstep::cli {

namespace po = boost::program_options;

namespace {

constexpr const char* kDefaultDatabase = "sqlite://dbstep.db";
constexpr const char* kDefaultSource = "embedded://";

// golang-migrate spells long options with one dash (-database URL, -path DIR, down -all,
// drop -f). They are accepted as the same options with two.
std::string normalize_option(const std::string& arg) {
  static const std::vector<std::string> long_names = {
      "database", "source", "path", "lock-timeout", "verbose", "help", "version", "all",
      "scratch", "from",
      "prefetch", "yes", "json", "exit-code", "force", "ignore-checksums", "out-of-order",
      "single-transaction", "dry-run", "quiet"};
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

}  // namespace

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
      ("ignore-checksums", po::bool_switch(),
       "migrate/goto: run even though applied migration files were edited since they ran")
      ("out-of-order", po::bool_switch(),
       "migrate/goto: first apply pending migrations below the current version")
      ("dry-run", po::bool_switch(),
       "migrate/rollback/goto/redo: print the plan and the statements; change nothing")
      ("json", po::bool_switch(),
       "print one JSON document (status, validate, version, the run commands, force, drop)")
      ("quiet,q", po::bool_switch(), "print errors and warnings only")
      ("scratch", po::value<std::string>(),
       "verify: run on this empty database instead of a temporary one (left empty)")
      ("from", po::value<std::string>(), "verify: check from version V on (apply those below)")
      ("exit-code", po::bool_switch(), "status: exit 3 when any migration is pending")
      ("force", po::bool_switch(),
       "baseline: even when the database has a version; repair --force V: set version V, clean")
      ("verbose,v", po::bool_switch(), "say more: source, database, lock wait, failing statement")
      ("prefetch", po::value<unsigned>(), "accepted for golang-migrate compatibility; ignored")
      ("help,h", po::bool_switch(), "show help (dbstep COMMAND --help for one command)")
      ("version", po::bool_switch(), "show dbstep's version");
  return opts;
}

bool wants_json(const std::vector<std::string>& args) {
  for (const auto& a : args) {
    if (a == "--") return false;
    if (a == "--json" || a == "-json") return true;
  }
  return false;
}

Settings parse_args(const std::vector<std::string>& args) {
  static const std::vector<std::string> with_value = {
      "-d", "--database", "-s", "--source", "--path", "--lock-timeout", "--prefetch",
      "--scratch", "--from"};
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
  s.ignore_checksums = vm["ignore-checksums"].as<bool>();
  s.out_of_order = vm["out-of-order"].as<bool>();
  s.json = vm["json"].as<bool>();
  s.dry_run = vm["dry-run"].as<bool>();
  s.quiet = vm["quiet"].as<bool>();
  s.exit_code = vm["exit-code"].as<bool>();
  if (vm.count("scratch")) s.scratch = vm["scratch"].as<std::string>();
  if (vm.count("from")) s.from = vm["from"].as<std::string>();
  s.force = vm["force"].as<bool>();
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

std::optional<std::uint64_t> count_arg(const Settings& settings, bool all_default) {
  const auto& pos = settings.positional;
  const std::string& command = pos[0];
  if (pos.size() > 2) throw UsageError(fmt::format("{}: too many arguments", command));
  if (pos.size() < 2) {
    if (all_default) return std::nullopt;
    throw UsageError(fmt::format("{} needs \"all\" or a number of migrations", command));
  }
  if (pos[1] == "all") return std::nullopt;
  return parse_count(pos[1], fmt::format("the argument of {}", command));
}

}  // namespace dbstep::cli
