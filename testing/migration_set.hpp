#pragma once
// MigrationSet: the migrations a test database is built from (a folder, or a set compiled into the
// program with dbstep_embed_migrations()), with what dbstep::testing needs to know about them to
// share template databases safely: a checksum over every migration file, and the set's origin.
//
// The checksum is SHA-256 (core's migration_checksum(), so the CRLF and byte-order-mark rules are
// the ones `dbstep validate` uses) over the set's migration files, name and checksum of each, in
// version order. Files that are not migrations do not count. It is computed once, when the set is
// made: make a new MigrationSet after changing the files. Templates are named after it, so two sets
// that differ in any migration never share a template, and a template whose set changed is rebuilt.
//
// The origin says where the set lives ("folder /abs/path", "embedded set NAME"); templates of the
// same origin with another checksum are the stale ones that get cleaned up.
//
// A MigrationSet is a small value: copy it freely. The embedded files it may refer to live for the
// whole program. Safe to use from several threads at once (it is immutable; open() makes a new
// Source each time).

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "core/source.hpp"
#include "core/version.hpp"
#include "sources/embedded/embedded_source.hpp"

namespace dbstep::testing {

class MigrationSet {
 public:
  // The migration files at the top level of `folder`. Throws Error(kSourceUnavailable) naming the
  // folder when it cannot be read, Error(kNoMigrations) when it holds no migration.
  static MigrationSet folder(const std::filesystem::path& folder);
  // A set compiled into the program by dbstep_embed_migrations() (dbstep_embedded::NAME()). Throws
  // Error(kNoMigrations) when the set holds no migration.
  static MigrationSet embedded(const sources::EmbeddedFiles& files);

  // A new Source over the set, for a Migrator.
  std::unique_ptr<Source> open() const;

  // 64 lower-case hex digits (see the header comment).
  const std::string& checksum() const { return checksum_; }
  // "folder /abs/path" or "embedded set NAME".
  const std::string& origin() const { return origin_; }
  // The highest version in the set.
  Version latest() const { return latest_; }
  // Whether `v` is a version of the set.
  bool contains(Version v) const;

 private:
  MigrationSet() = default;
  void index();  // fills checksum_, latest_ and versions_ from the files

  std::filesystem::path folder_;                      // a folder set
  const sources::EmbeddedFiles* embedded_ = nullptr;  // or an embedded one
  std::string origin_;
  std::string checksum_;
  Version latest_ = 0;
  std::shared_ptr<const std::vector<Version>> versions_;
};

}  // namespace dbstep::testing
