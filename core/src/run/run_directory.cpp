#include "xlhost/core/run/run_directory.hpp"

#include <algorithm>

#include "xlhost/core/util/error.hpp"
#include "xlhost/core/util/file_io.hpp"

namespace xlhost::core {

namespace fs = std::filesystem;

std::optional<std::string> RunDirectory::read(const fs::path& file, const std::string& what, uintmax_t max_bytes) const {
  const auto resolved = resolve(file, what, max_bytes);
  if (!resolved) return std::nullopt;
  return read_text_file(resolved->string(), what);
}

std::optional<fs::path> RunDirectory::resolve(const fs::path& file, const std::string& what, uintmax_t max_bytes) const {
  std::error_code ec;
  if (fs::symlink_status(file, ec).type() == fs::file_type::not_found) return std::nullopt;
  const fs::path resolved = fs::canonical(file, ec);
  if (ec) throw UserError(file.string() + ": cannot read the " + what + " (" + ec.message() + ")");
  const fs::path root = fs::canonical(root_, ec);
  const auto [end, ignored] = std::mismatch(root.begin(), root.end(), resolved.begin(), resolved.end());
  if (ec || end != root.end())
    throw UserError(file.string() + ": the " + what + " leads outside the run folder (to " + resolved.string() + "); not read");
  if (!fs::is_regular_file(resolved, ec)) throw UserError(file.string() + ": the " + what + " is not a regular file; not read");
  if (const auto size = fs::file_size(resolved, ec); !ec && size > max_bytes)
    throw UserError(file.string() + ": the " + what + " has " + std::to_string(size) + " bytes, more than the " +
                    std::to_string(max_bytes) + " it may have; not read");
  return resolved;
}

bool RunDirectory::is_run_folder(const fs::path& entry) {
  std::error_code ec;
  if (!fs::is_directory(entry, ec)) return false;
  const RunDirectory run(entry);
  return fs::symlink_status(run.record(), ec).type() != fs::file_type::not_found ||
         fs::symlink_status(run.train_log(), ec).type() != fs::file_type::not_found;
}

std::vector<fs::path> RunDirectory::run_folders_in(const fs::path& dir) {
  std::error_code ec;
  std::vector<fs::path> dirs;
  if (!fs::is_directory(dir, ec)) return dirs;
  for (const auto& entry : fs::directory_iterator(dir, ec))
    if (is_run_folder(entry.path())) dirs.push_back(entry.path());
  std::sort(dirs.begin(), dirs.end());
  return dirs;
}

std::filesystem::path record_markdown_beside(const std::string& config_path) {
  return std::filesystem::absolute(config_path).parent_path() / "record.md";
}

}  // namespace xlhost::core
