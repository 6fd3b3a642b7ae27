// Fuzzes core's migration file-name parser and the index built from a listing.
//
// Oracles, for any bytes:
// - parse_file_name() agrees with golang-migrate's regular expression
//   ^([0-9]+)_(.*)\.(up|down)\.(.*)$ (Go's '.' matches any byte but '\n'), evaluated by a
//   backtracking reference (itself checked against std::regex on short names): a match parses to that
//   version, identifier and direction, or throws kInvalidArgument exactly when the version does
//   not fit in 64 bits; a non-match is nullopt and never throws.
// - A parsed version printed back gives the file's digits without their leading zeros, and those
//   digits parse to the same number.
// - MigrationIndex::build() over the input split at '\n' (one name a line) either throws
//   kInvalidArgument (some name's version overflows), or kDuplicateMigration (two names share a
//   version and direction), or holds exactly the parsed files, one entry per version in strictly
//   ascending order, with first/last/next/prev/find consistent with that order.

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <optional>
#include <regex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "core/error.hpp"
#include "core/migration.hpp"

namespace {

using dbstep::Direction;
using dbstep::ErrorCode;
using dbstep::MigrationFile;
using dbstep::MigrationIndex;

[[noreturn]] void fail(const char* what, std::string_view name) {
  fmt::print(stderr, "fuzz_file_name: {} for name {:?}\n", what, std::string(name));
  std::abort();
}

void check(bool ok, const char* what, std::string_view name) {
  if (!ok) fail(what, name);
}

struct Expected {
  std::string digits;
  std::string identifier;
  Direction direction;
  bool operator==(const Expected&) const = default;
};

// golang-migrate's ^([0-9]+)_(.*)\.(up|down)\.(.*)$ by backtracking as a regex engine does: the
// digit run is maximal (a shorter one is followed by a digit, not '_'), the greedy identifier is
// tried longest first, "up" before "down", and '.' never matches '\n'.
std::optional<Expected> reference_match(std::string_view name) {
  std::size_t d = 0;
  while (d < name.size() && name[d] >= '0' && name[d] <= '9') ++d;
  if (d == 0 || d == name.size() || name[d] != '_') return std::nullopt;
  std::string_view after = name.substr(d + 1);
  const std::size_t first_nl = after.find('\n');
  const std::size_t last_nl = after.rfind('\n');
  for (std::size_t k = after.size() + 1; k-- > 0;) {
    if (first_nl != std::string_view::npos && k > first_nl) continue;  // '\n' in the identifier
    std::string_view identifier = after.substr(0, k);
    std::string_view rest = after.substr(k);
    for (auto [word, direction] : {std::pair{".up.", Direction::kUp},
                                   std::pair{".down.", Direction::kDown}}) {
      std::string_view w(word);
      if (rest.substr(0, w.size()) == w && (last_nl == std::string_view::npos || last_nl < k + w.size())) {
        return Expected{std::string(name.substr(0, d)), std::string(identifier), direction};
      }
    }
  }
  return std::nullopt;
}

// The same expression through std::regex, to check the reference above on short names
// (std::regex is slow and recurses per character).
constexpr std::size_t kRegexMaxLength = 64;
std::optional<Expected> regex_match(std::string_view name) {
  static const std::regex re(R"(^([0-9]+)_([^\n]*)\.(up|down)\.([^\n]*)$)");
  std::match_results<std::string_view::const_iterator> m;
  if (!std::regex_match(name.begin(), name.end(), m, re)) return std::nullopt;
  return Expected{m[1].str(), m[2].str(), m[3].str() == "up" ? Direction::kUp : Direction::kDown};
}

bool fits_in_64_bits(std::string_view digits) {
  std::uint64_t v = 0;
  auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
  return ec == std::errc() && ptr == digits.data() + digits.size();
}

// Parses one name and checks it on its own. Returns the parsed file, nullopt for a non-migration,
// and sets `overflow` when parsing threw for a version past 64 bits.
std::optional<MigrationFile> check_one(std::string_view name, bool with_regex, bool& overflow) {
  overflow = false;
  std::optional<MigrationFile> file;
  try {
    file = dbstep::parse_file_name(name);
  } catch (const dbstep::Error& e) {
    check(e.code() == ErrorCode::kInvalidArgument, "unexpected error code", name);
    overflow = true;
  }

  // The digits at the front, as the parser must have read them.
  std::size_t n = 0;
  while (n < name.size() && name[n] >= '0' && name[n] <= '9') ++n;
  std::string_view digits = name.substr(0, n);

  {
    std::optional<Expected> expected = reference_match(name);
    if (with_regex && name.size() <= kRegexMaxLength && regex_match(name) != expected) {
      fail("the reference matcher and std::regex disagree", name);
    }
    if (!expected) {
      check(!file && !overflow, "parsed a name the regex does not match", name);
    } else if (!fits_in_64_bits(expected->digits)) {
      check(overflow, "a version past 64 bits did not throw", name);
    } else {
      check(file.has_value(), "did not parse a name the regex matches", name);
      check(expected->digits == digits, "digits differ from the regex's", name);
      check(file->identifier == expected->identifier, "identifier differs from the regex's", name);
      check(file->direction == expected->direction, "direction differs from the regex's", name);
    }
  }
  if (overflow) {
    check(!fits_in_64_bits(digits), "threw for a version that fits in 64 bits", name);
    return std::nullopt;
  }
  if (!file) return std::nullopt;

  // Round trip: the version prints as the digits without leading zeros, which parse back.
  check(file->name == name, "name not kept byte for byte", name);
  std::string printed = fmt::format("{}", file->version);
  std::size_t zeros = digits.find_first_not_of('0');
  std::string_view significant = zeros == std::string_view::npos ? "0" : digits.substr(zeros);
  check(printed == significant, "version does not print back as its digits", name);
  std::uint64_t reparsed = 0;
  auto [ptr, ec] = std::from_chars(printed.data(), printed.data() + printed.size(), reparsed);
  check(ec == std::errc() && reparsed == file->version, "printed version does not parse back",
        name);
  // The name is VERSION_IDENTIFIER.DIRECTION.EXT with the identifier right after the '_'.
  std::string_view rest = name.substr(n + 1);
  std::string marker = fmt::format("{}.{}.", file->identifier, dbstep::to_string(file->direction));
  check(n < name.size() && name[n] == '_' && rest.substr(0, marker.size()) == marker,
        "name is not VERSION_IDENTIFIER.DIRECTION.EXT", name);
  return file;
}

void check_index(std::string_view input) {
  std::vector<std::string> names;
  std::size_t start = 0;
  while (start <= input.size() && names.size() < 512) {
    std::size_t nl = input.find('\n', start);
    if (nl == std::string_view::npos) nl = input.size();
    names.emplace_back(input.substr(start, nl - start));
    start = nl + 1;
  }

  bool any_overflow = false;
  std::map<std::pair<std::uint64_t, Direction>, std::vector<std::string>> expected;
  for (const auto& name : names) {
    bool overflow = false;
    std::optional<MigrationFile> f = check_one(name, /*with_regex=*/false, overflow);
    any_overflow |= overflow;
    if (f) expected[{f->version, f->direction}].push_back(name);
  }
  bool duplicate = false;
  for (const auto& [key, files] : expected) duplicate |= files.size() > 1;

  MigrationIndex index;
  try {
    index = MigrationIndex::build(names, "fuzz");
  } catch (const dbstep::Error& e) {
    if (e.code() == ErrorCode::kInvalidArgument) {
      check(any_overflow, "index threw kInvalidArgument with no overflowing version", input);
    } else {
      check(e.code() == ErrorCode::kDuplicateMigration && duplicate,
            "index threw an unexpected error", input);
    }
    return;
  }
  check(!any_overflow && !duplicate, "index accepted an overflow or a duplicate", input);

  // Every parsed file is in the index at its version and direction, and nothing else is.
  std::size_t files = 0;
  const auto& entries = index.entries();
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const MigrationIndex::Entry& e = entries[i];
    check(e.up || e.down, "entry with neither file", input);
    if (i > 0) check(entries[i - 1].version < e.version, "entries not strictly ascending", input);
    for (Direction d : {Direction::kUp, Direction::kDown}) {
      const auto& slot = d == Direction::kUp ? e.up : e.down;
      auto it = expected.find({e.version, d});
      check(slot.has_value() == (it != expected.end()), "entry differs from the parsed files",
            input);
      if (!slot) continue;
      ++files;
      check(slot->version == e.version && slot->direction == d && slot->name == it->second[0],
            "entry holds the wrong file", input);
    }
    check(&e.identifier() == (e.up ? &e.up->identifier : &e.down->identifier),
          "identifier() is not the up file's, else the down file's", input);
    check(index.find(e.version) == &e, "find() misses an entry", input);
    check(index.next(e.version) ==
              (i + 1 < entries.size() ? dbstep::OptVersion(entries[i + 1].version) : std::nullopt),
          "next() is not the following entry", input);
    check(index.prev(e.version) ==
              (i > 0 ? dbstep::OptVersion(entries[i - 1].version) : std::nullopt),
          "prev() is not the preceding entry", input);
    if (e.version != UINT64_MAX && (i + 1 == entries.size() || entries[i + 1].version != e.version + 1)) {
      check(!index.contains(e.version + 1) && !index.next(e.version + 1),
            "a version not in the index is found", input);
    }
  }
  check(files == expected.size(), "index does not hold every parsed file", input);
  check(index.first() == (entries.empty() ? std::nullopt : dbstep::OptVersion(entries.front().version)),
        "first() is not the lowest version", input);
  check(index.last() == (entries.empty() ? std::nullopt : dbstep::OptVersion(entries.back().version)),
        "last() is not the highest version", input);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  bool overflow = false;
  check_one(input, /*with_regex=*/true, overflow);  // the whole input as one name, '\n' included
  check_index(input);
  return 0;
}
