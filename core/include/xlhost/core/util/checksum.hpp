// Checksums that prove a file is what was written: XXH3-128 (libxxhash), ~10 GB/s, so a
// checkpoint or token cache is verified on every load at the cost of reading it once.
// Integrity against disk and copy errors, not a defence against a forger.
#pragma once

#include <cstddef>
#include <string>

namespace xlhost::core {

// 32 lowercase hex digits.
std::string checksum_bytes(const void* data, size_t bytes);
// UserError naming the file when it cannot be read.
std::string checksum_file(const std::string& path);

}  // namespace xlhost::core
