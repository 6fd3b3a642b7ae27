#include "cli/arguments.hpp"

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <set>

#include <boost/program_options.hpp>
#include <fmt/format.h>

#include "core/url.hpp"

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
      "single-transaction", "dry-run", "quiet", "db", "backup", "ext", "dir", "seq", "digits",
      "format", "tz"};
  if (arg.size() > 2 && arg[0] == '-' && arg[1] != '-') {
    std::string_view body = std::string_view(arg).substr(1);
    std::string_view name = body.substr(0, body.find('='));
    for (const auto& n : long_names) {
      if (name == n) return "-" + arg;
    }
    // Every other long option too (those added since the list was written).
    static const po::options_description all = option_descriptions();
    if (name.size() > 1 && all.find_nothrow(std::string(name), false, false, false)) {
      return "-" + arg;
    }
  }
  if (arg == "-f") return "--yes";
  if (arg.rfind("-f=", 0) == 0) return "--yes" + arg.substr(2);  // Go's -f=true
  return arg;
}

// Go's strconv.ParseBool, which reads golang-migrate's boolean flags (-verbose=true, -seq=0).
std::optional<bool> go_parse_bool(std::string_view v) {
  if (v == "1" || v == "t" || v == "T" || v == "TRUE" || v == "true" || v == "True") return true;
  if (v == "0" || v == "f" || v == "F" || v == "FALSE" || v == "false" || v == "False") {
    return false;
  }
  return std::nullopt;
}

// The long option "--name" or "--name=value" names (empty for anything else).
std::string long_option_name(std::string_view opt) {
  if (opt.size() < 3 || opt.substr(0, 2) != "--") return "";
  opt.remove_prefix(2);
  return std::string(opt.substr(0, opt.find('=')));
}

bool is_switch(const po::options_description& opts, const std::string& name) {
  const po::option_description* d = opts.find_nothrow(name, false, false, false);
  return d && d->semantic()->max_tokens() == 0;
}

// The database and the source: from the options, else from DATABASE_URL / DBSTEP_SOURCE. An
// empty value given explicitly is a mistake (an unset variable in a script: `-path "$DIR"`), never
// a default. dbstep's built-in example migrations are used only when neither is named; a
// database named without a source leaves `source` empty, which open_migrator() refuses.
void resolve_database_and_source(Settings& s, const po::variables_map& vm,
                                 const std::map<std::string, std::string>& spelled) {
  auto given = [&](const char* name, const char* short_name) -> std::optional<std::string> {
    if (!vm.count(name)) return std::nullopt;
    std::string value = vm[name].as<std::string>();
    if (value.empty()) {
      auto it = spelled.find(name);
      if (it == spelled.end() && short_name) it = spelled.find(short_name);
      const std::string flag = it != spelled.end() ? it->second : std::string("--") + name;
      const bool db = std::string_view(name) == "database" || std::string_view(name) == "db";
      throw UsageError(fmt::format(
          "{} is empty: {}", flag,
          db ? "give a database URL (sqlite://app.db, postgres://...) or a SQLite file path"
             : "give the migrations folder (or a source URL such as file://DIR)"));
    }
    return value;
  };
  auto from_env = [](const char* name) -> std::optional<std::string> {
    const char* v = std::getenv(name);
    if (!v) return std::nullopt;
    if (!*v) {
      throw UsageError(fmt::format("{} is set but empty: set it to a {}, or unset it", name,
                                   std::string_view(name) == "DATABASE_URL"
                                       ? "database URL"
                                       : "migrations folder or source URL"));
    }
    return std::string(v);
  };

  std::optional<std::string> database = given("database", "-d");
  const std::optional<std::string> db = given("db", nullptr);
  if (database && db && *database != *db) {
    throw UsageError(fmt::format("--database and --db name different databases; give one"));
  }
  if (!database) database = db;
  if (!database) database = from_env("DATABASE_URL");

  // golang-migrate: -path DIR means -source file://DIR, and an explicit -source wins.
  std::optional<std::string> source = given("source", "-s");
  const std::optional<std::string> path = given("path", nullptr);
  if (path) s.path = *path;
  if (!source) source = path;
  if (!source) source = from_env("DBSTEP_SOURCE");

  if (!database && !source) {
    s.database = kDefaultDatabase;
    s.source = kDefaultSource;
    return;
  }
  s.database = !database                ? std::string(kDefaultDatabase)
               : is_plain_path(*database) ? url_for_path("sqlite", *database)
                                          : *database;
  s.source = source.value_or("");
}

}  // namespace

bool is_negative_number(std::string_view s) {
  return s.size() > 1 && s[0] == '-' && s.find_first_not_of("0123456789", 1) == std::string_view::npos;
}

po::options_description option_descriptions() {
  po::options_description opts("Options");
  opts.add_options()
      ("database,d", po::value<std::string>(),
       "database URL, or a SQLite file path (env DATABASE_URL; default, with no source either: "
       "sqlite://dbstep.db)")
      ("db", po::value<std::string>(), "the same as --database")
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
      ("backup", po::bool_switch(),
       "migrate/rollback/goto/redo, SQLite: copy the database to <db>.backup-v<version>-<time> "
       "before a run that changes it")
      ("ext", po::value<std::string>(), "create: the files' extension (sql)")
      ("dir", po::value<std::string>(), "create: the folder (default: the current one)")
      ("seq", po::bool_switch(), "create: number sequentially instead of by time")
      ("digits", po::value<std::string>(), "create -seq: digits of the number (default 6)")
      ("format", po::value<std::string>(),
       "create: Go time layout of the version (default 20060102150405; unix, unixNano)")
      ("tz", po::value<std::string>(), "create: time zone of the version (default UTC)")
      ("help,h", po::bool_switch(), "show help (dbstep COMMAND --help for one command)")
      ("version", po::bool_switch(), "show dbstep's version");
  return opts;
}

bool wants_json(const std::vector<std::string>& args) {
  bool json = false;
  for (const auto& a : args) {
    if (a == "--") break;
    if (a == "--json" || a == "-json") json = true;
    for (const char* prefix : {"--json=", "-json="}) {
      if (a.rfind(prefix, 0) == 0) json = go_parse_bool(a.substr(std::strlen(prefix))).value_or(json);
    }
  }
  return json;
}

Settings parse_args(const std::vector<std::string>& args) {
  static const std::vector<std::string> with_value = {
      "-d", "--database", "-s", "--source", "--path", "--lock-timeout", "--prefetch",
      "--scratch", "--from", "--db", "--ext", "--dir", "--digits", "--format", "--tz"};
  static const po::options_description descriptions = option_descriptions();
  std::vector<std::string> options;
  Settings s;
  // Switches as Go's flag package reads them: -verbose, -verbose=true, -verbose=0 ... the last
  // one given wins. Each is handed to Boost at most once, and only when set.
  std::map<std::string, bool> switches;
  // How the user spelled each option with a value (-database, --db, -d), for messages.
  std::map<std::string, std::string> spelled;
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
    const std::string name = long_option_name(opt);
    if (!name.empty() && is_switch(descriptions, name)) {
      bool value = true;
      if (const auto eq = opt.find('='); eq != std::string::npos) {
        const auto parsed = go_parse_bool(std::string_view(opt).substr(eq + 1));
        if (!parsed) {
          throw UsageError(fmt::format("invalid boolean value \"{}\" for {}: use true or false "
                                       "(1, 0, t, f, TRUE, FALSE ... as Go reads them)",
                                       opt.substr(eq + 1), raw.substr(0, raw.find('='))));
        }
        value = *parsed;
      }
      switches[name] = value;
      continue;
    }
    spelled[name.empty() ? opt : name] = raw.substr(0, raw.find('='));
    if (!name.empty() && opt.size() == name.size() + 3 && opt.back() == '=') {
      // --source= : an empty value (Boost would call it missing), judged like -s "".
      options.push_back("--" + name);
      options.emplace_back();
      continue;
    }
    options.push_back(opt);
    if (std::find(with_value.begin(), with_value.end(), opt) != with_value.end()) {
      if (i + 1 >= args.size()) throw UsageError(fmt::format("option {} needs a value", raw));
      options.push_back(args[++i]);
    }
  }
  for (const auto& [name, on] : switches) {
    if (on) options.push_back("--" + name);
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
  resolve_database_and_source(s, vm, spelled);
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
  s.backup = vm["backup"].as<bool>();
  s.seq = vm["seq"].as<bool>();
  for (auto [name, field] : {std::pair{"ext", &s.ext}, {"dir", &s.dir}, {"digits", &s.digits},
                             {"format", &s.format}, {"tz", &s.tz}}) {
    if (vm.count(name)) *field = vm[name].as<std::string>();
  }
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
