#include "sources/dir/dir_source.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>

#include <fmt/format.h>

#include "core/error.hpp"
#include "core/migration.hpp"

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
    // Growing the vector 2,000 names long moved each name twice on average: reserve from the
    // folder's size instead, a hint only (ext4 uses 36 bytes or more per 28-byte name, tmpfs 20,
    // so this over-reserves on ext4 and grows once on tmpfs).
    struct stat dir_stat {};
    if (::fstat(::dirfd(dir), &dir_stat) == 0 && dir_stat.st_size > 0) {
      names.reserve(std::min<std::size_t>(static_cast<std::size_t>(dir_stat.st_size) / 32,
                                          std::size_t{1} << 20));
    }
    int read_errno = 0;
    try {
      for (;;) {
        errno = 0;  // readdir() reports an error only through errno, and stat() below sets it
        const dirent* entry = ::readdir(dir);
        if (!entry) {
          read_errno = errno;
          break;
        }
        bool regular = entry->d_type == DT_REG;
        if (entry->d_type == DT_UNKNOWN || entry->d_type == DT_LNK) {
          regular = follows_to_file(entry->d_name);
        }
        if (regular) names.emplace_back(entry->d_name);
      }
    } catch (...) {
      ::closedir(dir);
      throw;
    }
    ::closedir(dir);
    if (read_errno != 0) {
      throw Error(ErrorCode::kSourceUnavailable,
                  fmt::format("cannot read migration folder {}: {}", dir_.string(),
                              std::strerror(read_errno)));
    }
    return names;
  }

  // open, fstat, read, close: four system calls for a small file (an ifstream's seek-to-end size
  // query took seven), which `status` pays per applied migration when it compares checksums.
  // The size from fstat is only a hint: a file that grows or shrinks while it is read is read
  // to its real end.
  std::string read(std::string_view name) override {
    const fs::path path = dir_ / fs::path(std::string(name));
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    auto fail = [&](int err) {
      return Error(ErrorCode::kSourceUnavailable,
                   fmt::format("cannot read migration file {}: {}", path.string(),
                               std::strerror(err)));
    };
    if (fd < 0) throw fail(errno);
    struct Closer {
      int fd;
      ~Closer() { ::close(fd); }
    } closer{fd};
    struct stat st {};
    if (::fstat(fd, &st) != 0) throw fail(errno);
    std::string data;
    data.resize(st.st_size > 0 ? static_cast<std::size_t>(st.st_size) + 1 : 4096);
    std::size_t used = 0;
    for (;;) {
      if (used == data.size()) data.resize(data.size() * 2);
      const ssize_t got = ::read(fd, data.data() + used, data.size() - used);
      if (got < 0) {
        if (errno == EINTR) continue;
        throw fail(errno);
      }
      if (got == 0) break;
      used += static_cast<std::size_t>(got);
      // A regular file's read comes up short only at its end: no second read to see the end.
      if (S_ISREG(st.st_mode) && used < data.size()) break;
    }
    data.resize(used);
    return data;
  }

  std::string describe() const override { return fmt::format("folder {}", dir_.string()); }

 private:
  // Follows a symbolic link (or an entry whose type readdir() did not give) as the folder's
  // reader would: true for a regular file. A link that leads nowhere is ignored like any other
  // non-file, unless its name is a migration's: then it is an error naming the link and what is
  // wrong with it, since skipping it would silently drop a migration.
  bool follows_to_file(const char* name) const {
    const fs::path path = dir_ / name;
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0) return S_ISREG(st.st_mode);
    const int stat_errno = errno;
    bool migration_name = true;
    try {
      migration_name = parse_file_name(name).has_value();
    } catch (const Error&) {
      // A version that does not fit in 64 bits: still named like a migration.
    }
    if (!migration_name) return false;
    std::error_code ec;
    const fs::path target = fs::read_symlink(path, ec);
    const std::string link = ec ? std::string() : fmt::format(" (-> {})", target.string());
    std::string what;
    if (stat_errno == ELOOP) {
      what = fmt::format("is a symbolic link loop{}: it never reaches a file", link);
    } else if (stat_errno == ENOENT || stat_errno == ENOTDIR) {
      what = fmt::format("is a dangling symbolic link{}: its target does not exist", link);
    } else {
      what = fmt::format("cannot be followed{}: {}", link, std::strerror(stat_errno));
    }
    Error e(ErrorCode::kSourceUnavailable,
            fmt::format("migration file {} {}; point it at the migration file, or remove it",
                        path.string(), what));
    e.file = name;
    throw e;
  }

  fs::path dir_;
};

}  // namespace

std::unique_ptr<Source> open_directory(const Url& url) {
  // golang-migrate: file://./foo -> ./foo, file://foo -> foo. golang-migrate reads file:// as
  // the current folder; dbstep refuses it, since an empty path is more often a missing variable
  // (file://$DIR) than a wish for the current folder.
  if (url.body().empty()) {
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("source URL \"{}\" names no folder: write file://./migrations (relative "
                            "to the current folder), file:///srv/app/migrations (absolute), or "
                            "file://. for the current folder",
                            url.redacted()));
  }
  return std::make_unique<DirectorySource>(fs::path(url.body()));
}

}  // namespace dbstep::sources
