// Small file helpers shared by config, checkpoints, records and knowledge files.
#pragma once

#include <string>

namespace xlhost::core {

// The whole file; UserError "<path>: cannot open <what>" when it cannot be read.
std::string read_text_file(const std::string& path, const std::string& what = "file");

// Writes `text` to `path` through a temporary file, fsync and rename.
void write_file_atomically(const std::string& path, const std::string& text);

// fsync of a file or directory (a directory's fsync makes a rename in it durable).
void fsync_path(const std::string& path);

}  // namespace xlhost::core
