#pragma once

#include <cstdint>
#include <string>

namespace xlhost::core {

// Incremental MD5 (RFC 1321). Used for content hashes of data files; the digest of a whole
// file equals what DVC records for it.
class Md5 {
 public:
  Md5();
  void update(const void* data, size_t size);
  std::string hex_digest();  // finalises

 private:
  void block(const uint8_t* p);
  uint32_t state_[4];
  uint64_t length_ = 0;
  uint8_t buffer_[64];
  size_t buffered_ = 0;
};

std::string md5_file(const std::string& path);  // throws UserError when unreadable

}  // namespace xlhost::core
