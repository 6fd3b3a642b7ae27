#pragma once
// The checksum dbstep records for every migration file it runs, to tell later whether the file
// was edited since (status, validate, migrate's check before it runs anything).
//
// SHA-256 (OpenSSL's libcrypto) over the file's bytes after two normalisations that an editor or
// a git checkout makes without anyone editing the SQL: a leading UTF-8 byte-order mark is removed
// and every CRLF becomes LF. Any other change, whitespace included, is an edit. Written as 64
// lower-case hex digits.

#include <string>
#include <string_view>

namespace dbstep {

std::string migration_checksum(std::string_view file_bytes);

}  // namespace dbstep
