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

// A driver being opened: calling it once finishes opening and hands the driver over (or throws
// what opening it would have thrown).
using PendingDriver = std::function<std::unique_ptr<Driver>()>;
// Starts opening a driver and returns before it is open, for a driver that waits on a server
// (a new PostgreSQL session takes about a millisecond to start): the caller works meanwhile
// (Migrator::open lists the migrations) and then finishes. Throws what it can tell at once.
using DriverStarter = std::function<PendingDriver(const Url&)>;

class Registry {
 public:
  // Registering a scheme twice replaces the earlier factory. `factory` opens at once; `start`,
  // for a driver that can, starts opening (start_driver()).
  void add_driver(std::string scheme, DriverFactory factory, DriverStarter start = {});
  void add_source(std::string scheme, SourceFactory factory);

  std::unique_ptr<Driver> open_driver(std::string_view url) const;
  // open_driver() in two halves: the driver's starter when it has one, else the driver opened
  // now and handed over by the PendingDriver. Errors about the URL come from here.
  PendingDriver start_driver(std::string_view url) const;
  // A text without "://" is a directory path and opens with the "file" source.
  std::unique_ptr<Source> open_source(std::string_view url) const;

  std::vector<std::string> driver_schemes() const;
  std::vector<std::string> source_schemes() const;

 private:
  struct DriverEntry {
    DriverFactory open;
    DriverStarter start;  // empty: open only
  };
  const DriverEntry& driver_for(const Url& url) const;

  std::map<std::string, DriverEntry, std::less<>> drivers_;
  std::map<std::string, SourceFactory, std::less<>> sources_;
};

}  // namespace dbstep
