#pragma once
// Go's time layouts, for `create -format` (golang-migrate's flag takes a Go layout: the reference
// time Mon Jan 2 15:04:05 MST 2006 written the way the result should look, "20060102150405" by
// default). format_go_layout() writes a moment the way Go's time.Time.Format does: the same
// elements (2006 06 01 1 Jan January 02 2 _2 002 __2 15 03 3 04 4 05 5 PM pm Mon Monday MST
// -0700 -07:00 -07 Z0700 Z07:00 Z07 and their seconds forms, .000 / .999 / ,000 fractions), and
// anything else copied as it is. Like Go, an unusual layout is never an error: it formats to
// whatever it spells.

#include <cstdint>
#include <string>
#include <string_view>

namespace dbstep::cli {

// A moment as the layout sees it: the civil time in some zone and that zone's offset and name.
struct GoTime {
  int year = 1970;
  int month = 1;         // 1..12
  int day = 1;           // 1..31
  int hour = 0;          // 0..23
  int minute = 0;
  int second = 0;
  int nanosecond = 0;    // 0..999,999,999
  int weekday = 4;       // 0 = Sunday
  int yearday = 1;       // 1..366
  int utc_offset_s = 0;  // east of UTC
  std::string zone = "UTC";
};

std::string format_go_layout(std::string_view layout, const GoTime& t);

// Where `create -tz NAME` puts the clock, as Go's time.LoadLocation reads NAME: "" and "UTC" are
// UTC, "Local" the system's zone, anything else an IANA name looked up in $ZONEINFO or the
// system's zoneinfo folder. Throws std::invalid_argument with Go's message ("unknown time zone
// NAME", "time: invalid location name") when there is no such zone.
GoTime go_time_in_zone(std::int64_t unix_seconds, int nanosecond, const std::string& zone);

}  // namespace dbstep::cli
