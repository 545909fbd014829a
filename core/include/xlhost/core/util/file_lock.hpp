// An exclusive advisory lock (flock) on a file, held while the object lives. The kernel
// drops it when the process ends, however it ends, so a killed holder never leaves a
// stale lock behind.
#pragma once

#include <optional>
#include <string>

namespace xlhost::core {

class FileLock {
 public:
  // The lock, or nothing when another process holds it. UserError naming the file when it
  // cannot be opened or created.
  static std::optional<FileLock> try_acquire(const std::string& path);
  FileLock(FileLock&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  FileLock& operator=(FileLock&&) = delete;
  FileLock(const FileLock&) = delete;
  ~FileLock();

 private:
  explicit FileLock(int fd) : fd_(fd) {}
  int fd_;
};

}  // namespace xlhost::core
