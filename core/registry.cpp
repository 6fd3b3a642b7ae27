#include "core/registry.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/error.hpp"

namespace dbstep {

namespace {

template <typename Map>
std::vector<std::string> keys(const Map& m) {
  std::vector<std::string> out;
  for (const auto& [k, v] : m) out.push_back(k);
  return out;
}

}  // namespace

void Registry::add_driver(std::string scheme, DriverFactory factory, DriverStarter start) {
  drivers_[std::move(scheme)] = DriverEntry{std::move(factory), std::move(start)};
}

void Registry::add_source(std::string scheme, SourceFactory factory) {
  sources_[std::move(scheme)] = std::move(factory);
}

const Registry::DriverEntry& Registry::driver_for(const Url& url) const {
  auto it = drivers_.find(url.scheme());
  if (it == drivers_.end()) {
    throw Error(ErrorCode::kUnknownScheme,
                fmt::format("unknown database URL scheme \"{}\" in {}; known schemes: {}",
                            url.scheme(), url.redacted(), fmt::join(keys(drivers_), ", ")));
  }
  return it->second;
}

std::unique_ptr<Driver> Registry::open_driver(std::string_view text) const {
  const Url url = Url::parse(text);
  return driver_for(url).open(url);
}

PendingDriver Registry::start_driver(std::string_view text) const {
  const Url url = Url::parse(text);
  const DriverEntry& entry = driver_for(url);
  if (entry.start) return entry.start(url);
  auto opened = std::make_shared<std::unique_ptr<Driver>>(entry.open(url));
  return [opened] { return std::move(*opened); };
}

std::unique_ptr<Source> Registry::open_source(std::string_view text) const {
  if (text.empty()) throw Error(ErrorCode::kInvalidArgument, "the source URL or path is empty");
  Url url = Url::parse(text.find("://") == std::string_view::npos ? url_for_path("file", text)
                                                                  : std::string(text));
  auto it = sources_.find(url.scheme());
  if (it == sources_.end()) {
    throw Error(ErrorCode::kUnknownScheme,
                fmt::format("unknown source URL scheme \"{}\" in {}; known schemes: {} (or give a "
                            "directory path)",
                            url.scheme(), url.redacted(), fmt::join(keys(sources_), ", ")));
  }
  return it->second(url);
}

std::vector<std::string> Registry::driver_schemes() const { return keys(drivers_); }
std::vector<std::string> Registry::source_schemes() const { return keys(sources_); }

}  // namespace dbstep
