#pragma once
// Migration files and the index built from a source's file names. Parsing and ordering live here
// once, so every source (a directory, files embedded in the binary) behaves the same.
//
// A migration file is named VERSION_IDENTIFIER.(up|down).EXT, golang-migrate's
// ^([0-9]+)_(.*)\.(up|down)\.(.*)$ : VERSION is an unsigned 64-bit number (leading zeros allowed),
// IDENTIFIER may be empty and may contain dots (the last ".up." or ".down." splits). Names that
// do not match are not migrations and are ignored. Up and down files are paired by version only;
// either may be missing, which means "no SQL that way".

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/version.hpp"

namespace dbstep {

enum class Direction { kUp, kDown };
const char* to_string(Direction d);
// "up" or "down" back to a Direction; nullopt for anything else.
std::optional<Direction> parse_direction(std::string_view text);

struct MigrationFile {
  Version version = 0;
  std::string identifier;  // "create_users" in "1_create_users.up.sql"
  Direction direction = Direction::kUp;
  std::string name;        // the file's base name as listed by the source
};

// nullopt when `name` is not a migration file name. Throws Error(kInvalidArgument) when it is one
// whose version does not fit in 64 bits (golang-migrate skips such files silently).
std::optional<MigrationFile> parse_file_name(std::string_view name);

class MigrationIndex {
 public:
  struct Entry {
    Version version = 0;
    std::optional<MigrationFile> up;
    std::optional<MigrationFile> down;
    // Known only from the database's history (its files are gone from the source; its down
    // SQL is stored there): see add_from_history().
    std::optional<std::string> history_identifier;
    // The identifier to show for this version: the up file's, else the down file's.
    const std::string& identifier() const {
      return up ? up->identifier : down ? down->identifier : *history_identifier;
    }
  };

  MigrationIndex() = default;
  // Builds the index from a source's file names (in any order). `where` names the source in
  // errors. Throws Error(kDuplicateMigration) naming both files when two files share a version
  // and direction (the two first in byte order when more do), and what parse_file_name()
  // throws. Given the listing as a temporary (build(source.list(), ...)), the index takes the
  // migrations' names from it rather than copying them.
  static MigrationIndex build(const std::vector<std::string>& names, std::string_view where);
  static MigrationIndex build(std::vector<std::string>&& names, std::string_view where);

  // Adds version `v`, whose files are gone from the source but whose down SQL the history
  // stores, so that a rollback can be planned across it. Only for planning a move down: moving
  // up across such an entry would record the version without running anything. No-op when the
  // index has `v`.
  void add_from_history(Version v, std::string identifier);

  bool empty() const { return entries_.empty(); }
  // The source as build() was told to name it ("folder ./migrations"), for messages.
  const std::string& where() const { return where_; }
  std::size_t size() const { return entries_.size(); }
  const std::vector<Entry>& entries() const { return entries_; }

  OptVersion first() const;
  OptVersion last() const;
  // The next/previous version in the index; nullopt when there is none or when `v` itself is not
  // in the index (golang-migrate's Next/Prev return ErrNotExist in both cases).
  OptVersion next(Version v) const;
  OptVersion prev(Version v) const;
  const Entry* find(Version v) const;
  bool contains(Version v) const { return find(v) != nullptr; }

 private:
  std::vector<Entry> entries_;  // sorted by version, unique
  std::string where_;
};

}  // namespace dbstep
