#include "xlhost/core/experiments/memory_usage_file.hpp"

#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

#include "xlhost/core/util/error.hpp"
#include "xlhost/core/util/file_io.hpp"

namespace xlhost::core {

namespace {

constexpr char kMagic[4] = {'X', 'L', 'M', 'U'};
constexpr uint32_t kVersion = 1;
constexpr size_t kHeaderBytes = 4 + 4 + 4 + 8;

template <typename T>
void put(std::string& out, T value) {
  out.append(reinterpret_cast<const char*>(&value), sizeof value);  // the hosts xlhost runs on are little-endian
}

std::string header_bytes(uint32_t layers, uint64_t rows) {
  std::string out(kMagic, 4);
  put(out, kVersion), put(out, layers), put(out, rows);
  return out;
}

std::string record_bytes(const MemoryUsageRecord& r) {
  std::string out;
  put(out, r.step), put(out, r.layer), put(out, static_cast<uint32_t>(r.reads.size()));
  for (const auto& [row, reads] : r.reads) put(out, row), put(out, reads);
  return out;
}

// Reads from a byte string with a cursor; UserError at the first short read.
struct Reader {
  const std::string& bytes;
  const std::string& path;
  size_t at = 0;
  template <typename T>
  T get() {
    if (bytes.size() - at < sizeof(T))
      throw UserError(path + ": memory usage file truncated at byte " + std::to_string(at));
    T value;
    std::memcpy(&value, bytes.data() + at, sizeof value);
    at += sizeof value;
    return value;
  }
};

}  // namespace

void append_memory_usage(const std::filesystem::path& path, uint32_t layers, uint64_t rows,
                         const std::vector<MemoryUsageRecord>& records) {
  std::string bytes;
  if (!std::filesystem::exists(path)) {
    bytes = header_bytes(layers, rows);
  } else {
    std::string head(kHeaderBytes, '\0');
    std::ifstream(path, std::ios::binary).read(head.data(), static_cast<std::streamsize>(head.size()));
    if (head != header_bytes(layers, rows))
      throw UserError(path.string() + ": a memory usage file of another bank shape (or not one at all); this model "
                      "has " + std::to_string(layers) + " layers x " + std::to_string(rows) + " rows");
  }
  for (const auto& r : records) bytes += record_bytes(r);
  std::ofstream out(path, std::ios::binary | std::ios::app);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.flush();
  if (!out) throw UserError(path.string() + ": cannot write the memory usage (" + std::strerror(errno) + ")");
}

MemoryUsageFile read_memory_usage(const std::filesystem::path& path, int64_t up_to_step) {
  const std::string bytes = read_text_file(path.string(), "memory usage");
  const std::string name = path.string();
  if (bytes.size() < kHeaderBytes || bytes.compare(0, 4, kMagic, 4) != 0)
    throw UserError(name + ": not a memory usage file (no XLMU header)");
  Reader in{bytes, name, 4};
  if (const auto version = in.get<uint32_t>(); version != kVersion)
    throw UserError(name + ": memory usage file version " + std::to_string(version) + ", this xlhost reads 1");
  MemoryUsageFile file;
  file.layers = in.get<uint32_t>(), file.rows = in.get<uint64_t>();
  while (in.at < bytes.size()) {
    MemoryUsageRecord r;
    const size_t start = in.at;
    r.step = in.get<int64_t>(), r.layer = in.get<uint32_t>();
    const auto n = in.get<uint32_t>();
    if (r.layer >= file.layers || n > file.rows || (bytes.size() - in.at) / 8 < n)
      throw UserError(name + ": memory usage record at byte " + std::to_string(start) + " is malformed");
    r.reads.resize(n);
    for (auto& [row, reads] : r.reads) {
      row = in.get<uint32_t>(), reads = in.get<uint32_t>();
      if (row >= file.rows) throw UserError(name + ": row " + std::to_string(row) + " at byte " + std::to_string(in.at) +
                                            " is beyond the bank's " + std::to_string(file.rows));
    }
    if (up_to_step < 0 || r.step <= up_to_step) file.records.push_back(std::move(r));
  }
  return file;
}

MemoryUsageFile truncate_memory_usage(const std::filesystem::path& path, int64_t step) {
  auto kept = read_memory_usage(path, step);
  std::string bytes = header_bytes(kept.layers, kept.rows);
  for (const auto& r : kept.records) bytes += record_bytes(r);
  write_file_atomically(path.string(), bytes);
  return kept;
}

}  // namespace xlhost::core
