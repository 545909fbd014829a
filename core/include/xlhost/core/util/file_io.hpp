// File helpers shared by config, checkpoints, records and knowledge files. Every write is
// checked, the close and fsync included: a full disk or a lost permission is an exception
// naming the file, never a silently short file.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace xlhost::core {

// The whole file; UserError "<path>: cannot open <what>" when it cannot be read, and a
// clear error for what is not a regular file (a directory, a FIFO, /dev/zero).
std::string read_text_file(const std::string& path, const std::string& what = "file");

// UserError unless `path` is a regular file (a FIFO or a device would block or never end).
void require_regular_file(const std::string& path, const std::string& what);

// Creates `path` and its parents unless it is a directory already; UserError naming it
// and the reason when it cannot be (a file in the way, no permission).
void ensure_directory(const std::string& path, const std::string& what);

// A file written in pieces.
class FileWriter {
 public:
  explicit FileWriter(std::string path);  // creates or truncates
  ~FileWriter();                          // closes an unfinished file without raising
  FileWriter(const FileWriter&) = delete;
  FileWriter& operator=(const FileWriter&) = delete;
  void write(const void* data, size_t bytes);
  void write(std::string_view text) { write(text.data(), text.size()); }
  void finish();  // fsync and close
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  int fd_ = -1;
};

// Writes `text` to `path`, checked and fsynced, in place.
void write_file(const std::string& path, std::string_view text);

// Writes `text` to `path` through a temporary file, fsync and rename: readers see the old
// content or the new one, never a part.
void write_file_atomically(const std::string& path, std::string_view text);

// fsync of a file or directory (a directory's fsync makes a rename in it durable).
void fsync_path(const std::string& path);

}  // namespace xlhost::core
