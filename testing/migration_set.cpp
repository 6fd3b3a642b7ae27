#include "testing/migration_set.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <system_error>

#include "core/checksum.hpp"
#include "core/error.hpp"
#include "core/migration.hpp"
#include "core/url.hpp"
#include "sources/dir/dir_source.hpp"

namespace dbstep::testing {

MigrationSet MigrationSet::folder(const std::filesystem::path& folder) {
  MigrationSet set;
  std::error_code ec;
  auto absolute = std::filesystem::weakly_canonical(std::filesystem::absolute(folder), ec);
  set.folder_ = ec ? std::filesystem::absolute(folder) : absolute;
  set.origin_ = "folder " + set.folder_.string();
  set.index();
  return set;
}

MigrationSet MigrationSet::embedded(const sources::EmbeddedFiles& files) {
  MigrationSet set;
  set.embedded_ = &files;
  set.origin_ = fmt::format("embedded set {}", files.name);
  set.index();
  return set;
}

std::unique_ptr<Source> MigrationSet::open() const {
  if (embedded_) return sources::open_embedded(*embedded_);
  return sources::open_directory(Url::parse(url_for_path("file", folder_.string())));
}

bool MigrationSet::contains(Version v) const {
  return std::binary_search(versions_->begin(), versions_->end(), v);
}

void MigrationSet::index() {
  auto source = open();
  auto index = MigrationIndex::build(source->list(), source->describe());
  if (index.empty()) {
    throw Error(ErrorCode::kNoMigrations,
                fmt::format("{} holds no migration files (NNN_name.up.sql / NNN_name.down.sql)",
                            source->describe()));
  }
  // One line per file, in version order, up before down: "name<TAB>checksum".
  std::string manifest;
  std::vector<Version> versions;
  for (const auto& entry : index.entries()) {
    versions.push_back(entry.version);
    for (const auto* file : {&entry.up, &entry.down}) {
      if (!*file) continue;
      manifest +=
          fmt::format("{}\t{}\n", (*file)->name, migration_checksum(source->read((*file)->name)));
    }
  }
  checksum_ = migration_checksum(manifest);
  latest_ = versions.back();
  versions_ = std::make_shared<const std::vector<Version>>(std::move(versions));
}

}  // namespace dbstep::testing
