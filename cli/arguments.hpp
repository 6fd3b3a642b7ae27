#pragma once
// The command line as dbstep reads it: golang-migrate's spellings (-path, -database, down -all,
// drop -f) and dbstep's own, options before or after the command. parse_args() resolves the
// defaults and environment variables (DATABASE_URL, DBSTEP_SOURCE) so commands see final values;
// what a command's own arguments mean is left to the command.

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <boost/program_options/options_description.hpp>

#include "core/version.hpp"

namespace dbstep::cli {

// A mistake in the command line: exit code 2, the message and a pointer to --help.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Settings {
  // The database URL (a plain path given as the database is already a sqlite:// URL here) and
  // the source. With neither named, dbstep's demo: sqlite://dbstep.db and embedded://. A
  // database named without a source leaves `source` empty (open_migrator() refuses it).
  std::string database;
  std::string source;
  std::string path;  // golang-migrate's -path DIR
  double lock_timeout_s = 15;
  bool yes = false;
  bool all = false;
  bool verbose = false;
  bool single_transaction = false;
  bool json = false;              // status, validate, version: one JSON document on stdout
  bool exit_code = false;         // status: exit 3 when anything is pending
  bool force = false;             // baseline: over an existing version; repair: with a version
  bool ignore_checksums = false;  // run although applied files were edited
  bool out_of_order = false;      // apply pending migrations below the current version
  std::string scratch;            // verify --scratch URL: the database to verify on
  std::string from;               // verify --from V: check from version V on
  bool dry_run = false;           // migrate, rollback, goto, redo: print the plan, change nothing
  bool quiet = false;             // errors and warnings only
  bool backup = false;            // migrate, rollback, goto, redo: copy the database first
  // create: golang-migrate's flags, nullopt when not given.
  std::optional<std::string> ext, dir, digits, format, tz;
  bool seq = false;
  bool help = false;
  bool version = false;
  std::vector<std::string> positional;  // command and its arguments
};

// Throws UsageError.
Settings parse_args(const std::vector<std::string>& args);

// Whether `args` asks for JSON output, judged without parsing them (so that an argument error
// can still be reported as JSON).
bool wants_json(const std::vector<std::string>& args);

boost::program_options::options_description option_descriptions();

// "-1", "-20": a number, not an option.
bool is_negative_number(std::string_view s);
// A count of migrations ("3"); `what` names the argument in the UsageError.
std::uint64_t parse_count(const std::string& text, std::string_view what);
// A migration version ("20240101120000"); `what` names the argument in the UsageError.
Version parse_version(const std::string& text, std::string_view what);
// The count argument of migrate/rollback (positional[1]): nullopt for "all", or when there is
// none and `all_default`.
std::optional<std::uint64_t> count_arg(const Settings& settings, bool all_default);

}  // namespace dbstep::cli
