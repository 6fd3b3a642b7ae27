#include "sources/dir/dir_source.hpp"

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
    std::vector<std::string> names;
    std::error_code ec;
    fs::directory_iterator it(dir_, ec);
    if (ec) {
      throw Error(ErrorCode::kSourceUnavailable,
                  fmt::format("cannot read migration folder {}: {}", dir_.string(), ec.message()));
    }
    for (; it != fs::directory_iterator(); it.increment(ec)) {
      std::error_code type_ec;
      if (it->is_regular_file(type_ec)) names.push_back(it->path().filename().string());
    }
    if (ec) {
      throw Error(ErrorCode::kSourceUnavailable,
                  fmt::format("cannot read migration folder {}: {}", dir_.string(), ec.message()));
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
