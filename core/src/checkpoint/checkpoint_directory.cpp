#include "xlhost/core/checkpoint/checkpoint_directory.hpp"

#include <rapidjson/document.h>

#include <filesystem>

#include "xlhost/core/experiments/run_directory.hpp"
#include "xlhost/core/util/error.hpp"
#include "xlhost/core/util/file_io.hpp"

namespace xlhost::core {

namespace fs = std::filesystem;

std::string resolve_checkpoint(const std::string& path) {
  const fs::path p(path);
  if (fs::exists(p / "model.safetensors")) return p.string();
  for (const fs::path& root : {RunDirectory(p).checkpoints(), p}) {
    if (fs::exists(root / "latest")) {
      std::string name = read_text_file((root / "latest").string(), "checkpoint pointer");
      name.erase(name.find_last_not_of(" \n\r\t") + 1);
      if (fs::exists(root / name / "model.safetensors")) return (root / name).string();
    }
  }
  throw UserError(path + ": no checkpoint here (expected a checkpoint directory with model.safetensors, "
                         "or a run directory with checkpoints/latest)");
}

CheckpointState read_checkpoint_state(const std::string& dir) {
  const std::string text = read_text_file((fs::path(dir) / "state.json").string(), "checkpoint state");
  rapidjson::Document doc;
  doc.Parse(text.c_str());
  if (doc.HasParseError() || !doc.IsObject() || !doc.HasMember("step"))
    throw UserError(dir + "/state.json: corrupted checkpoint state");
  CheckpointState s;
  s.step = doc["step"].GetInt64();
  s.micro_batches = doc["micro_batches"].GetInt64();
  s.tokens = doc["tokens"].GetInt64();
  s.plugin_name = doc["plugin_name"].GetString();
  s.plugin_version = doc["plugin_version"].GetString();
  s.plugin_path = doc["plugin_path"].GetString();
  return s;
}

std::string read_checkpoint_config(const std::string& dir) {
  return read_text_file((fs::path(dir) / "config.json").string(), "checkpoint config");
}

}  // namespace xlhost::core
