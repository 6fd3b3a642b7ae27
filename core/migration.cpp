#include "core/migration.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstring>
#include <type_traits>

#include <fmt/format.h>

#include "core/error.hpp"

namespace dbstep {

const char* to_string(Direction d) { return d == Direction::kUp ? "up" : "down"; }

std::optional<Direction> parse_direction(std::string_view text) {
  if (text == "up") return Direction::kUp;
  if (text == "down") return Direction::kDown;
  return std::nullopt;
}

namespace {

// A migration file name's parts, as offsets into the name: what parse_file_name() and
// MigrationIndex::build() both read, without copying anything.
struct NameParts {
  Version version;
  Direction direction;
  std::size_t identifier_begin;  // after VERSION_
  std::size_t identifier_end;    // at the ".up." or ".down." that splits
};

// ^([0-9]+)_(.*)\.(down|up)\.(.*)$ as a plain scan: a listing of 10,000 files is parsed on every
// start. nullopt when `name` does not match; throws when it does but VERSION overflows. Inlined
// into build()'s loop, where returning the optional through memory was a tenth of its cost.
[[gnu::always_inline]] inline std::optional<NameParts> scan_name(std::string_view name) {
  const char* const p = name.data();
  const std::size_t n = name.size();
  std::size_t digits = 0;
  Version version = 0;  // checked below when long
  for (; digits < n; ++digits) {
    const unsigned digit = static_cast<unsigned char>(p[digits]) - unsigned{'0'};
    if (digit > 9) break;
    version = version * 10 + digit;
  }
  if (digits == 0 || digits >= n || p[digits] != '_') return std::nullopt;
  const std::size_t first = digits + 1;
  // '.' in the regex does not match '\n', and (.*) spans the rest of the name.
  if (std::memchr(p + first, '\n', n - first) != nullptr) return std::nullopt;

  // The identifier is greedy, so the direction is the right-most ".up." or ".down." after "_".
  // That is also the one ending at the right-most dot that ends either (a ".down." starting
  // before a ".up." and ending after it would end one byte after it, with its 'n' on the up's
  // last dot): walk the dots back from the end, usually only past a short extension.
  std::optional<NameParts> parts;
  for (std::size_t dot = n; dot-- > first + 3;) {
    if (p[dot] != '.') continue;
    if (p[dot - 1] == 'p' && p[dot - 2] == 'u' && p[dot - 3] == '.') {
      parts = NameParts{0, Direction::kUp, first, dot - 3};
      break;
    }
    if (dot >= first + 5 && std::memcmp(p + dot - 5, ".down", 5) == 0) {
      parts = NameParts{0, Direction::kDown, first, dot - 5};
      break;
    }
  }
  if (!parts) return std::nullopt;

  // 19 digits always fit in 64 bits; a longer VERSION may still fit (leading zeros).
  if (digits > 19) {
    auto [ptr, ec] = std::from_chars(p, p + digits, version);
    if (ec != std::errc() || ptr != p + digits) {
      throw Error(ErrorCode::kInvalidArgument,
                  fmt::format("migration file {}: version {} does not fit in 64 bits", name,
                              name.substr(0, digits)));
    }
  }
  parts->version = version;
  return parts;
}

}  // namespace

std::optional<MigrationFile> parse_file_name(std::string_view name) {
  const auto parts = scan_name(name);
  if (!parts) return std::nullopt;
  MigrationFile file;
  file.version = parts->version;
  file.identifier.assign(
      name.substr(parts->identifier_begin, parts->identifier_end - parts->identifier_begin));
  file.direction = parts->direction;
  file.name.assign(name);
  return file;
}

namespace {

// A listed name that is a migration's: what scan_name() read and where the name is in the list.
struct Found {
  NameParts parts;
  std::size_t at;
};

// What build() sorts, small so that the sort moves little: a file's version and, below it, its
// direction (up before down) and where it is in the found files.
struct SortKey {
  Version version;
  std::size_t rest;  // index in the found files * 2, + 1 for a down file

  std::size_t file() const { return rest >> 1; }
  bool same_slot(const SortKey& other) const {
    return version == other.version && ((rest ^ other.rest) & 1) == 0;
  }
};

// One stable counting-sort pass on `digit` (< `buckets`).
template <typename Digit>
void counting_pass(std::vector<SortKey>& keys, std::vector<SortKey>& out, std::size_t buckets,
                   Digit digit) {
  std::vector<std::size_t> start(buckets + 1);
  for (const SortKey& k : keys) ++start[digit(k) + 1];
  for (std::size_t b = 1; b < start.size(); ++b) start[b] += start[b - 1];
  for (const SortKey& k : keys) out[start[digit(k)]++] = k;
  keys.swap(out);
}

// Orders `keys` by version, then up before down; keys for the same version and direction keep
// their listing order. A directory lists its files in hash order, and a comparison sort of 2,000
// of them was most of build(). Versions numbered one after another (1, 2, 3, ...) take one
// counting pass on their distance from the lowest, with the direction as its last bit; sparse
// ones (timestamps) an LSD radix sort whose first pass takes the direction with VERSION's lowest
// byte, then only the bytes of VERSION that differ between the files. Nothing moves when the
// list is already in order.
void sort_keys(std::vector<SortKey>& keys) {
  const auto less = [](const SortKey& a, const SortKey& b) {
    if (a.version != b.version) return a.version < b.version;
    return (a.rest & 1) < (b.rest & 1);
  };
  if (std::is_sorted(keys.begin(), keys.end(), less)) return;

  Version any = 0;
  Version all = ~Version{0};
  Version lowest = ~Version{0};
  Version highest = 0;
  for (const SortKey& k : keys) {
    any |= k.version;
    all &= k.version;
    lowest = std::min(lowest, k.version);
    highest = std::max(highest, k.version);
  }
  std::vector<SortKey> out(keys.size());
  if (highest - lowest < 4 * keys.size()) {
    counting_pass(keys, out, 2 * static_cast<std::size_t>(highest - lowest + 1),
                  [lowest](const SortKey& k) {
                    return static_cast<std::size_t>(k.version - lowest) << 1 | (k.rest & 1);
                  });
    return;
  }
  const Version differ = any ^ all;  // the bits that are not the same in every version
  counting_pass(keys, out, 512, [](const SortKey& k) {
    return static_cast<std::size_t>((k.version & 0xff) << 1 | (k.rest & 1));
  });
  for (unsigned shift = 8; shift < 64; shift += 8) {
    if (((differ >> shift) & 0xff) == 0) continue;
    counting_pass(keys, out, 256, [shift](const SortKey& k) {
      return static_cast<std::size_t>((k.version >> shift) & 0xff);
    });
  }
}

// Two files for one version and direction, keys[first] and the next: the error names the two
// first of that run of files in byte order, as a sort by name (build()'s former tie-break) did.
[[noreturn]] void throw_duplicate(const std::vector<SortKey>& keys, std::size_t first,
                                  const std::vector<Found>& files,
                                  const std::vector<std::string>& names, std::string_view where) {
  std::vector<std::string_view> run;
  for (std::size_t i = first; i < keys.size() && keys[i].same_slot(keys[first]); ++i) {
    run.emplace_back(names[files[keys[i].file()].at]);
  }
  std::partial_sort(run.begin(), run.begin() + 2, run.end());
  const NameParts& parts = files[keys[first].file()].parts;
  throw Error(ErrorCode::kDuplicateMigration,
              fmt::format("duplicate migration file: {} and {} in {} both have version {} ({}); "
                          "rename or remove one of them",
                          run[0], run[1], where, parts.version, to_string(parts.direction)));
}

// Converts to the MigrationFile for one listed name, inside std::optional::emplace(): its
// identifier is built in place and its name moved (kTake) or copied once, where a MigrationFile
// built first and then moved in copied the identifier twice more.
template <bool kTake>
struct FileFrom {
  const NameParts& parts;
  std::conditional_t<kTake, std::string&, const std::string&> name;

  operator MigrationFile() const {  // NOLINT(google-explicit-constructor): for emplace()
    const char* const begin = name.data() + parts.identifier_begin;
    const char* const end = name.data() + parts.identifier_end;
    if constexpr (kTake) {
      return MigrationFile{parts.version, std::string(begin, end), parts.direction,
                           std::move(name)};
    } else {
      return MigrationFile{parts.version, std::string(begin, end), parts.direction, name};
    }
  }
};

// build() for both overloads: with kTake the names are moved out of `names` into the entries
// (the listing is a temporary: a Migrator's), else copied.
template <bool kTake, typename Names>
std::vector<MigrationIndex::Entry> make_entries(Names& names, std::string_view where) {
  std::vector<Found> files(names.size());
  std::size_t found = 0;
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (auto parts = scan_name(names[i])) files[found++] = Found{*parts, i};
  }
  files.resize(found);
  std::vector<SortKey> keys(found);
  for (std::size_t i = 0; i < found; ++i) {
    keys[i] = SortKey{files[i].parts.version,
                      i * 2 + (files[i].parts.direction == Direction::kDown ? 1 : 0)};
  }
  sort_keys(keys);

  std::size_t versions = keys.empty() ? 0 : 1;
  for (std::size_t i = 1; i < keys.size(); ++i) {
    if (keys[i].same_slot(keys[i - 1])) throw_duplicate(keys, i - 1, files, names, where);
    if (keys[i].version != keys[i - 1].version) ++versions;
  }

  std::vector<MigrationIndex::Entry> entries(versions);
  MigrationIndex::Entry* e = entries.data();
  for (std::size_t i = 0; i < keys.size(); ++i) {
    const SortKey& k = keys[i];
    const Found& f = files[k.file()];
    if (i > 0 && keys[i - 1].version != k.version) ++e;
    e->version = k.version;
    auto& slot = f.parts.direction == Direction::kUp ? e->up : e->down;
    slot.emplace(FileFrom<kTake>{f.parts, names[f.at]});
  }
  return entries;
}

}  // namespace

MigrationIndex MigrationIndex::build(const std::vector<std::string>& names,
                                     std::string_view where) {
  MigrationIndex index;
  index.entries_ = make_entries<false>(names, where);
  index.where_ = std::string(where);
  return index;
}

MigrationIndex MigrationIndex::build(std::vector<std::string>&& names, std::string_view where) {
  MigrationIndex index;
  index.entries_ = make_entries<true>(names, where);
  index.where_ = std::string(where);
  return index;
}

void MigrationIndex::add_from_history(Version v, std::string identifier) {
  auto at = std::lower_bound(entries_.begin(), entries_.end(), v,
                             [](const Entry& e, Version x) { return e.version < x; });
  if (at != entries_.end() && at->version == v) return;
  Entry e;
  e.version = v;
  e.history_identifier = std::move(identifier);
  entries_.insert(at, std::move(e));
}

OptVersion MigrationIndex::first() const {
  if (entries_.empty()) return std::nullopt;
  return entries_.front().version;
}

OptVersion MigrationIndex::last() const {
  if (entries_.empty()) return std::nullopt;
  return entries_.back().version;
}

const MigrationIndex::Entry* MigrationIndex::find(Version v) const {
  auto it = std::lower_bound(entries_.begin(), entries_.end(), v,
                             [](const Entry& e, Version x) { return e.version < x; });
  if (it == entries_.end() || it->version != v) return nullptr;
  return &*it;
}

OptVersion MigrationIndex::next(Version v) const {
  const Entry* e = find(v);
  if (!e || e + 1 == entries_.data() + entries_.size()) return std::nullopt;
  return (e + 1)->version;
}

OptVersion MigrationIndex::prev(Version v) const {
  const Entry* e = find(v);
  if (!e || e == entries_.data()) return std::nullopt;
  return (e - 1)->version;
}

}  // namespace dbstep
