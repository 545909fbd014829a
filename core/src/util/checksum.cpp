#include "xlhost/core/util/checksum.hpp"

#include <xxhash.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <vector>

#include "xlhost/core/util/error.hpp"
#include "xlhost/core/util/file_io.hpp"

namespace xlhost::core {

namespace {

std::string hex(XXH128_hash_t h) {
  char text[33];
  std::snprintf(text, sizeof text, "%016llx%016llx", static_cast<unsigned long long>(h.high64),
                static_cast<unsigned long long>(h.low64));
  return text;
}

}  // namespace

std::string checksum_bytes(const void* data, size_t bytes) { return hex(XXH3_128bits(data, bytes)); }

std::string checksum_file(const std::string& path) {
  require_regular_file(path, "checksummed");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UserError(path + ": cannot open to verify its checksum");
  std::unique_ptr<XXH3_state_t, decltype(&XXH3_freeState)> state(XXH3_createState(), &XXH3_freeState);
  XXH3_128bits_reset(state.get());
  std::vector<char> buffer(1 << 20);
  while (in) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    XXH3_128bits_update(state.get(), buffer.data(), static_cast<size_t>(in.gcount()));
  }
  if (in.bad()) throw UserError(path + ": read error while verifying its checksum");
  return hex(XXH3_128bits_digest(state.get()));
}

}  // namespace xlhost::core
