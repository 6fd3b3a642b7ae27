#include "sources/dir/dir_source.hpp"

#include <dirent.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>

#include <fmt/format.h>

#include "core/error.hpp"

namespace dbstep::sources {

namespace {

namespace fs = std::filesystem;

class DirectorySource final : public Source {
 public:
  explicit DirectorySource(fs::path dir) : dir_(std::move(dir)) {
    std::error_code ec;
    auto status = fs::status(dir_, ec);
    if (ec || !fs::exists(status)) {
      throw Error(ErrorCode::kSourceUnavailable,
                  fmt::format("migration folder {} does not exist{}", dir_.string(),
                              ec && ec != std::errc::no_such_file_or_directory
                                  ? " (" + ec.message() + ")"
                                  : ""));
    }
    if (!fs::is_directory(status)) {
      throw Error(ErrorCode::kSourceUnavailable,
                  fmt::format("{} is not a folder: give the folder that holds the migration files",
                              dir_.string()));
    }
  }

  std::vector<std::string> list() override {
    // readdir() rather than std::filesystem's iterator: a folder of 10,000 migrations is listed
    // on every start, and d_type spares a stat() per file on most file systems.
    DIR* dir = ::opendir(dir_.c_str());
    if (!dir) {
      throw Error(ErrorCode::kSourceUnavailable,
                  fmt::format("cannot read migration folder {}: {}", dir_.string(),
                              std::strerror(errno)));
    }
    std::vector<std::string> names;
    errno = 0;
    while (const dirent* entry = ::readdir(dir)) {
      bool regular = entry->d_type == DT_REG;
      if (entry->d_type == DT_UNKNOWN || entry->d_type == DT_LNK) {
        struct stat st {};  // follow symbolic links to files, as the folder's reader would
        regular = ::stat((dir_ / entry->d_name).c_str(), &st) == 0 && S_ISREG(st.st_mode);
      }
      if (regular) names.emplace_back(entry->d_name);
    }
    int read_errno = errno;
    ::closedir(dir);
    if (read_errno != 0) {
      throw Error(ErrorCode::kSourceUnavailable,
                  fmt::format("cannot read migration folder {}: {}", dir_.string(),
                              std::strerror(read_errno)));
    }
    return names;
  }

  std::string read(std::string_view name) override {
    fs::path path = dir_ / fs::path(std::string(name));
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      throw Error(ErrorCode::kSourceUnavailable,
                  fmt::format("cannot read migration file {}: {}", path.string(),
                              std::strerror(errno)));
    }
    std::string data;
    in.seekg(0, std::ios::end);
    auto size = in.tellg();
    if (size > 0) {
      data.resize(static_cast<std::size_t>(size));
      in.seekg(0);
      in.read(data.data(), size);
    }
    if (!in && !in.eof()) {
      throw Error(ErrorCode::kSourceUnavailable,
                  fmt::format("cannot read migration file {}", path.string()));
    }
    return data;
  }

  std::string describe() const override { return fmt::format("folder {}", dir_.string()); }

 private:
  fs::path dir_;
};

}  // namespace

std::unique_ptr<Source> open_directory(const Url& url) {
  // golang-migrate: file://./foo -> ./foo, file://foo -> foo, file:// -> the current folder.
  std::string path = url.body().empty() ? "." : url.body();
  return std::make_unique<DirectorySource>(fs::path(path));
}

}  // namespace dbstep::sources
