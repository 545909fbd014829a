#include "xlhost/core/util/file_io.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "xlhost/core/util/error.hpp"

namespace xlhost::core {

std::string read_text_file(const std::string& path, const std::string& what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UserError(path + ": cannot open " + what);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

void fsync_path(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) throw UserError(path + ": cannot open to fsync");
  ::fsync(fd);
  ::close(fd);
}

void write_file_atomically(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary);
    out << text;
    if (!out) throw UserError(tmp + ": cannot write");
  }
  fsync_path(tmp);
  std::filesystem::rename(tmp, path);
}

}  // namespace xlhost::core
