// Fuzzes the device-list CSV reader (it takes a path: the input goes through a memfd).
#include <cstddef>
#include <cstdint>

#include "fuzz_input.hpp"
#include "imprint/profile/csv.hpp"
#include "imprint/core/error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  imprint::fuzz::MemoryFile file(data, size);
  try {
    for (const imprint::DeviceRow& row : imprint::read_devices_csv(file.path())) {
      // What the reader promises: every row has an id and only variable-named columns.
      if (row.device_id.empty() || row.line < 1) __builtin_trap();
      for (const auto& [name, value] : row.columns) {
        if (!imprint::is_variable_name(name)) __builtin_trap();
      }
    }
  } catch (const imprint::Error&) {
  }
  return 0;
}
