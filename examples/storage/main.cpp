// storage_demo: opens (and so migrates) a notes database through Storage::open() and says what
// happened.
//   storage_demo [--no-backup] [--open-only] PATH
#include <iostream>
#include <string>

#include <fmt/format.h>

#include "examples/storage/storage.hpp"

int main(int argc, char** argv) {
  storage::Options options;
  bool open_only = false;
  std::string path;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--no-backup") options.backup = false;
    else if (arg == "--open-only") open_only = true;
    else path = arg;
  }
  if (path.empty()) {
    std::cerr << "usage: storage_demo [--no-backup] [--open-only] PATH\n";
    return 2;
  }
  try {
    auto store = storage::Storage::open(path, options);
    const auto& r = store.migration();
    if (r.steps.empty()) {
      fmt::print("Opened {}: already at version {}\n", path, dbstep::to_string(r.to));
    } else {
      fmt::print("Opened {}: migrated from version {} to {} ({} migration(s))\n", path,
                 dbstep::to_string(r.from), dbstep::to_string(r.to), r.steps.size());
    }
    if (store.backup()) fmt::print("Backup: {}\n", store.backup()->string());
    if (!open_only) {
      store.add_note("hello", "written by storage_demo");
      fmt::print("{} note(s) in the Inbox\n", store.notes().size());
    }
    return 0;
  } catch (const std::exception& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 1;
  }
}
