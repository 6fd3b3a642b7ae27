#pragma once
// The directory source: migration files in one folder, named by file://DIR
// (file://./migrations, file:///srv/app/migrations, file://. for the current folder) or given as
// a plain path. Only the folder's top level is read; sub-folders and files that are not
// migrations are ignored. Symbolic links are followed; one named like a migration that leads to
// no file (dangling, a loop) is an error naming it.

#include <memory>

#include "core/source.hpp"
#include "core/url.hpp"

namespace dbstep::sources {

// Throws Error(kSourceUnavailable) naming the folder when it is missing, not a folder, or
// unreadable, and Error(kInvalidArgument) for file:// without a path. list() throws
// Error(kSourceUnavailable) naming the file for a broken link named like a migration.
std::unique_ptr<Source> open_directory(const Url& url);

}  // namespace dbstep::sources
