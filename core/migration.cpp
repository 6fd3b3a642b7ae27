#include "core/migration.hpp"

#include <algorithm>
#include <charconv>

#include <fmt/format.h>

#include "core/error.hpp"

namespace dbstep {

const char* to_string(Direction d) { return d == Direction::kUp ? "up" : "down"; }

std::optional<Direction> parse_direction(std::string_view text) {
  if (text == "up") return Direction::kUp;
  if (text == "down") return Direction::kDown;
  return std::nullopt;
}

std::optional<MigrationFile> parse_file_name(std::string_view name) {
  // ^([0-9]+)_(.*)\.(down|up)\.(.*)$ without std::regex: a listing of 10,000 files is parsed on
  // every start, so this stays a plain scan. '.' in the regex does not match '\n'.
  if (name.find('\n') != std::string_view::npos) return std::nullopt;
  std::size_t digits = 0;
  while (digits < name.size() && name[digits] >= '0' && name[digits] <= '9') ++digits;
  if (digits == 0 || digits >= name.size() || name[digits] != '_') return std::nullopt;

  // The identifier is greedy, so the direction is the right-most ".up." or ".down." after "_".
  std::string_view after = name.substr(digits + 1);
  std::size_t up = after.rfind(".up.");
  std::size_t down = after.rfind(".down.");
  std::size_t at;
  Direction direction;
  if (up == std::string_view::npos && down == std::string_view::npos) return std::nullopt;
  if (down == std::string_view::npos || (up != std::string_view::npos && up > down)) {
    at = up;
    direction = Direction::kUp;
  } else {
    at = down;
    direction = Direction::kDown;
  }

  MigrationFile file;
  auto [ptr, ec] = std::from_chars(name.data(), name.data() + digits, file.version);
  if (ec != std::errc() || ptr != name.data() + digits) {
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("migration file {}: version {} does not fit in 64 bits", name,
                            name.substr(0, digits)));
  }
  file.identifier = std::string(after.substr(0, at));
  file.direction = direction;
  file.name = std::string(name);
  return file;
}

MigrationIndex MigrationIndex::build(const std::vector<std::string>& names,
                                     std::string_view where) {
  std::vector<MigrationFile> files;
  files.reserve(names.size());
  for (const auto& n : names) {
    if (auto f = parse_file_name(n)) files.push_back(std::move(*f));
  }
  // Sorted by a small key rather than by moving the files (two strings each) around: a source
  // lists its files in no useful order, and this sort was most of an up-to-date run's own work.
  struct Key {
    Version version;
    Direction direction;
    std::size_t at;
  };
  std::vector<Key> order;
  order.reserve(files.size());
  for (std::size_t i = 0; i < files.size(); ++i) {
    order.push_back(Key{files[i].version, files[i].direction, i});
  }
  std::sort(order.begin(), order.end(), [&](const Key& a, const Key& b) {
    if (a.version != b.version) return a.version < b.version;
    if (a.direction != b.direction) return a.direction < b.direction;
    return files[a.at].name < files[b.at].name;
  });

  MigrationIndex index;
  index.where_ = std::string(where);
  std::size_t versions = 0;
  for (std::size_t i = 0; i < order.size(); ++i) {
    if (i == 0 || order[i].version != order[i - 1].version) ++versions;
  }
  index.entries_.reserve(versions);
  for (const Key& k : order) {
    MigrationFile& f = files[k.at];
    if (index.entries_.empty() || index.entries_.back().version != f.version) {
      index.entries_.push_back(Entry{f.version, std::nullopt, std::nullopt});
    }
    Entry& e = index.entries_.back();
    auto& slot = f.direction == Direction::kUp ? e.up : e.down;
    if (slot) {
      throw Error(ErrorCode::kDuplicateMigration,
                  fmt::format("duplicate migration file: {} and {} in {} both have version {} ({}); "
                              "rename or remove one of them",
                              slot->name, f.name, where, f.version, to_string(f.direction)));
    }
    slot = std::move(f);
  }
  return index;
}

void MigrationIndex::add_from_history(Version v, std::string identifier) {
  auto at = std::lower_bound(entries_.begin(), entries_.end(), v,
                             [](const Entry& e, Version x) { return e.version < x; });
  if (at != entries_.end() && at->version == v) return;
  Entry e{v, std::nullopt, std::nullopt};
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
