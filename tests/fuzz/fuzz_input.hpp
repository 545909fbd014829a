// Shared by the fuzz targets: the input as a file (for parsers that read paths), and the
// one exception a parser may throw for bad input.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include "xlhost/core/util/error.hpp"

namespace fuzz {

// A per-process scratch folder in /dev/shm when there is one, removed at exit.
inline const std::filesystem::path& scratch() {
  struct Folder {
    std::filesystem::path path;
    ~Folder() {
      std::error_code ignored;
      std::filesystem::remove_all(path, ignored);
    }
  };
  static const Folder folder{(std::filesystem::exists("/dev/shm") ? "/dev/shm" : "/tmp") /
                             std::filesystem::path("xlhost_fuzz_" + std::to_string(::getpid()))};
  static const bool created = std::filesystem::create_directories(folder.path);
  (void)created;
  return folder.path;
}

inline std::string write_input(const std::string& name, const uint8_t* data, size_t size) {
  const auto path = scratch() / name;
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  return path.string();
}

// Runs f; a UserError (bad input explained) is the expected way to refuse input.
template <typename F>
void refusing_is_fine(F&& f) {
  try {
    f();
  } catch (const xlhost::core::UserError&) {
  }
}

}  // namespace fuzz
