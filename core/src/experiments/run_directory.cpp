#include "xlhost/core/experiments/run_directory.hpp"

namespace xlhost::core {

std::filesystem::path record_markdown_beside(const std::string& config_path) {
  return std::filesystem::absolute(config_path).parent_path() / "record.md";
}

}  // namespace xlhost::core
