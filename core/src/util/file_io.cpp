#include "xlhost/core/util/file_io.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "xlhost/core/util/error.hpp"

namespace xlhost::core {

namespace {

std::string errno_text() { return std::strerror(errno); }

}  // namespace

void require_regular_file(const std::string& path, const std::string& what) {
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (ec || !std::filesystem::exists(status)) throw UserError(path + ": cannot open " + what + " (no such file)");
  if (std::filesystem::is_directory(status)) throw UserError(path + ": is a directory, expected a " + what + " file");
  if (!std::filesystem::is_regular_file(status))
    throw UserError(path + ": not a regular file (a device, FIFO or socket), expected a " + what + " file");
}

void ensure_directory(const std::string& path, const std::string& what) {
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec || !std::filesystem::is_directory(path))
    throw UserError(path + ": cannot create the " + what + " folder (" + (ec ? ec.message() : "a file is in the way") + ")");
  // The effective user's rights (access() would ask about the real user's).
  if (::faccessat(AT_FDCWD, path.c_str(), W_OK, AT_EACCESS) != 0) throw UserError(path + ": the " + what + " folder is not writable");
}

std::string read_text_file(const std::string& path, const std::string& what) {
  require_regular_file(path, what);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UserError(path + ": cannot open " + what);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

FileWriter::FileWriter(std::string path) : path_(std::move(path)) {
  fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) throw UserError(path_ + ": cannot create (" + errno_text() + ")");
}

FileWriter::~FileWriter() {
  if (fd_ >= 0) ::close(fd_);
}

void FileWriter::write(const void* data, size_t bytes) {
  const auto* p = static_cast<const char*>(data);
  while (bytes > 0) {
    const ssize_t n = ::write(fd_, p, bytes);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw UserError(path_ + ": cannot write (" + (n < 0 ? errno_text() : "no progress") + ")");
    p += n, bytes -= static_cast<size_t>(n);
  }
}

void FileWriter::finish() {
  if (::fsync(fd_) != 0) throw UserError(path_ + ": cannot write (fsync: " + errno_text() + ")");
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) throw UserError(path_ + ": cannot write (close: " + errno_text() + ")");
}

void write_file(const std::string& path, std::string_view text) {
  FileWriter out(path);
  out.write(text);
  out.finish();
}

void fsync_path(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw UserError(path + ": cannot open to fsync (" + errno_text() + ")");
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) throw UserError(path + ": fsync failed (" + errno_text() + ")");
}

void write_file_atomically(const std::string& path, std::string_view text) {
  const std::string tmp = path + ".tmp";
  try {
    write_file(tmp, text);
    std::filesystem::rename(tmp, path);
  } catch (...) {
    std::error_code ignored;
    std::filesystem::remove(tmp, ignored);
    throw;
  }
}

}  // namespace xlhost::core
