#pragma once
// Schema snapshots: a database's schema as a deterministic, sorted, diffable text
// (Driver::schema_snapshot() makes it), saved to a file as a dump, and compared.
//
// A snapshot's first line names the database's kind ("dialect sqlite", "dialect postgresql").
// A dump file is a header line (kSchemaDumpHeader) followed by the snapshot, so a file that is
// not one is refused by name before anything is compared. Two snapshots compare equal when
// their texts are equal; the difference is printed as a unified diff (`-` the first, `+` the
// second, three lines of context), which is what `dbstep schema diff` and `dbstep verify` show.
// Free functions, no state: safe from any thread, each on its own Driver.

#include <string>
#include <string_view>

#include "core/driver.hpp"

namespace dbstep {

// The first line of every dump file starts with this.
inline constexpr std::string_view kSchemaDumpHeader = "-- dbstep schema dump v1";

// `driver`'s schema as a dump file's text: the header line, then Driver::schema_snapshot().
// Read-only.
std::string schema_dump(Driver& driver);

// The snapshot inside a dump file's `text` (everything after the header line). Throws
// Error(kInvalidArgument) naming `file_name` when the text does not start with the header.
std::string snapshot_from_dump(std::string_view text, std::string_view file_name);

// A unified diff of two snapshots, line by line: "--- before_label", "+++ after_label", then
// hunks ("@@ -a,b +c,d @@") with `context` unchanged lines around each change. Empty when the
// texts are equal.
std::string diff_snapshots(std::string_view before, std::string_view after,
                           std::string_view before_label, std::string_view after_label,
                           int context = 3);

// What compare_with_dump() found.
struct SchemaDrift {
  std::string difference;  // diff_snapshots(dump, live): empty when the schema matches
  bool matches() const { return difference.empty(); }
};

// Compares `driver`'s live schema with the dump file `file_name` whose text is `dump_text`
// (the dump is "before", the live database "after"). Throws as snapshot_from_dump() does.
SchemaDrift compare_with_dump(Driver& driver, std::string_view dump_text,
                              std::string_view file_name);

}  // namespace dbstep
