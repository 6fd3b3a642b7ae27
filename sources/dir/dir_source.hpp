#pragma once
// The directory source: migration files in one folder, named by file://DIR
// (file://./migrations, file:///srv/app/migrations, file:// for the current folder) or given as
// a plain path. Only the folder's top level is read; sub-folders and files that are not
// migrations are ignored.

#include <memory>

#include "core/source.hpp"
#include "core/url.hpp"

namespace dbstep::sources {

// Throws Error(kSourceUnavailable) naming the folder when it is missing, not a folder, or
// unreadable.
std::unique_ptr<Source> open_directory(const Url& url);

}  // namespace dbstep::sources
