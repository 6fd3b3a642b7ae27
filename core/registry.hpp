#pragma once
// Registry: URL scheme -> factory, for drivers and for sources. A plain map filled explicitly by
// whoever knows the back ends (the CLI's register_builtin, or an application); nothing registers
// itself. Opening a URL whose scheme is unknown throws Error(kUnknownScheme) listing the known
// schemes. Not thread-safe while being filled; const use from many threads is fine.

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/driver.hpp"
#include "core/source.hpp"
#include "core/url.hpp"

namespace dbstep {

using DriverFactory = std::function<std::unique_ptr<Driver>(const Url&)>;
using SourceFactory = std::function<std::unique_ptr<Source>(const Url&)>;

class Registry {
 public:
  // Registering a scheme twice replaces the earlier factory.
  void add_driver(std::string scheme, DriverFactory factory);
  void add_source(std::string scheme, SourceFactory factory);

  std::unique_ptr<Driver> open_driver(std::string_view url) const;
  // A text without "://" is a directory path and opens with the "file" source.
  std::unique_ptr<Source> open_source(std::string_view url) const;

  std::vector<std::string> driver_schemes() const;
  std::vector<std::string> source_schemes() const;

 private:
  std::map<std::string, DriverFactory, std::less<>> drivers_;
  std::map<std::string, SourceFactory, std::less<>> sources_;
};

}  // namespace dbstep
