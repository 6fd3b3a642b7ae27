#include "sources/embedded/embedded_source.hpp"

#include <algorithm>
#include <unordered_map>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/error.hpp"

namespace dbstep::sources {

namespace {

class EmbeddedSource final : public Source {
 public:
  explicit EmbeddedSource(const EmbeddedFiles& files) : files_(files) {}

  std::vector<std::string> list() override {
    std::vector<std::string> names;
    names.reserve(files_.count);
    by_name_.reserve(files_.count);
    for (std::size_t i = 0; i < files_.count; ++i) {
      names.emplace_back(files_.files[i].name);
      by_name_.emplace(files_.files[i].name, &files_.files[i]);
    }
    return names;
  }

  std::string read(std::string_view name) override {
    if (by_name_.empty()) list();
    auto it = by_name_.find(name);
    if (it == by_name_.end()) {
      throw Error(ErrorCode::kSourceUnavailable,
                  fmt::format("{} has no file {}", describe(), name));
    }
    return std::string(it->second->begin, it->second->end);
  }

  std::string describe() const override {
    return fmt::format("embedded migrations \"{}\"", files_.name);
  }

 private:
  const EmbeddedFiles& files_;
  std::unordered_map<std::string_view, const EmbeddedFile*> by_name_;
};

}  // namespace

std::unique_ptr<Source> open_embedded(const EmbeddedFiles& files) {
  return std::make_unique<EmbeddedSource>(files);
}

SourceFactory embedded_factory(std::vector<const EmbeddedFiles*> sets) {
  return [sets = std::move(sets)](const Url& url) -> std::unique_ptr<Source> {
    if (sets.empty()) {
      throw Error(ErrorCode::kSourceUnavailable, "this program has no embedded migrations");
    }
    std::string name = url.body();
    while (!name.empty() && name.back() == '/') name.pop_back();
    if (name.empty()) return open_embedded(*sets.front());
    for (const auto* s : sets) {
      if (name == s->name) return open_embedded(*s);
    }
    std::vector<std::string_view> names;
    for (const auto* s : sets) names.emplace_back(s->name);
    throw Error(ErrorCode::kSourceUnavailable,
                fmt::format("no embedded migrations named \"{}\"; this program has: {}", name,
                            fmt::join(names, ", ")));
  };
}

}  // namespace dbstep::sources
