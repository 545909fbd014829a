// memory_usage.bin in a run folder: how often each row of a memory model's bank was read,
// per layer and log interval, over training (train.memory_usage). Little-endian:
//   header   "XLMU" (4 bytes), uint32 version (1), uint32 layers, uint64 rows
//   records  int64 step, uint32 layer, uint32 n, then n × (uint32 row, uint32 reads):
//            the rows that layer read since the record before (ascending, reads > 0),
//            one record per layer at every logged step.
// The reads since the start are the sum of the records up to a step.
#pragma once

#include <cstdint>
#include <filesystem>
#include <utility>
#include <vector>

namespace xlhost::core {

struct MemoryUsageRecord {
  int64_t step = 0;
  uint32_t layer = 0;
  std::vector<std::pair<uint32_t, uint32_t>> reads;  // (row, reads)
};

struct MemoryUsageFile {
  uint32_t layers = 0;
  uint64_t rows = 0;
  std::vector<MemoryUsageRecord> records;
};

// Appends `records`, writing the header first when the file is new; UserError when the
// write fails or an existing file's header names another shape.
void append_memory_usage(const std::filesystem::path& path, uint32_t layers, uint64_t rows,
                         const std::vector<MemoryUsageRecord>& records);

// The whole file; UserError naming the file and the offset when it is malformed. Records
// of steps after `up_to_step` (>= 0) are left out.
MemoryUsageFile read_memory_usage(const std::filesystem::path& path, int64_t up_to_step = -1);

// Rewrites the file without the records after `step` (a resumed run repeats those steps),
// and returns what it kept.
MemoryUsageFile truncate_memory_usage(const std::filesystem::path& path, int64_t step);

}  // namespace xlhost::core
