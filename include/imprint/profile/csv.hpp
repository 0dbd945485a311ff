// The device list of a batch: a CSV file (RFC 4180: quoted fields may hold commas, quotes as "",
// and newlines; CRLF or LF line ends) with a header row. Column device_id is required; every other
// column is a template variable for that device.
#pragma once

#include <string>
#include <vector>

#include "imprint/profile/template.hpp"

namespace imprint {

struct DeviceRow {
  int line = 0;           // 1-based line of the file where the row starts
  std::string device_id;
  Variables columns;      // every column but device_id, by header name
};

// Reads and validates the whole file. Error(Invalid) "<file>:<line>: ..." for an empty file, a
// header without device_id or with a column that is not a variable name (or appears twice), a row
// with the wrong number of fields, a missing device id, a duplicate device id (naming both lines)
// and malformed quoting. Blank lines are skipped. A header with no rows gives an empty list.
std::vector<DeviceRow> read_devices_csv(const std::string& path);

}  // namespace imprint
