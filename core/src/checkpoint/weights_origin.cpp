#include "xlhost/core/checkpoint/weights_origin.hpp"

#include <filesystem>

#include "xlhost/core/checkpoint/checkpoint_directory.hpp"
#include "xlhost/core/run/run_directory.hpp"
#include "xlhost/core/util/checksum.hpp"
#include "xlhost/core/util/error.hpp"
#include "xlhost/core/util/file_io.hpp"
#include "xlhost/core/util/json.hpp"

namespace xlhost::core {

namespace fs = std::filesystem;

const char* format_name(WeightsFormat format) {
  switch (format) {
    case WeightsFormat::kXlhostCheckpoint: return "xlhost checkpoint";
    case WeightsFormat::kHuggingFace: return "Hugging Face folder";
    case WeightsFormat::kTorchStateDict: return "PyTorch state dict";
    case WeightsFormat::kSafetensors: return "safetensors file";
  }
  return "?";
}

namespace {

// The run a checkpoint belongs to (<run>/checkpoints/step_N), named by the experiment id of
// the config saved with it, when the run folder still has its record.
void set_run(WeightsOrigin& origin, const CheckpointFolder& checkpoint) {
  const fs::path run_dir = checkpoint.root().parent_path().parent_path();
  if (!fs::is_regular_file(RunDirectory(run_dir).record())) return;  // copied out of its run: no lineage to keep
  try {
    const std::string path = checkpoint.config().string();
    const auto config = parse_json(read_checkpoint_config(checkpoint.root().string()), path);
    if (!config.IsObject()) return;
    origin.run_id = JsonFields(JsonFields(config, path).object("experiment"), path).string("id");
    origin.run_dir = run_dir.string();
  } catch (const UserError&) {  // an unreadable config: no lineage either
  }
}

// xlhost_source.json, which `xlhost export` writes beside an export.
void read_export_source(WeightsOrigin& origin, const fs::path& dir) {
  const fs::path file = dir / "xlhost_source.json";
  if (!fs::exists(file)) return;
  const auto doc = parse_json(read_text_file(file.string(), "export source"), file.string());
  if (!doc.IsObject()) throw UserError(file.string() + ": expected a JSON object");
  const JsonFields fields(doc, file.string());
  if (fields.has("run_id")) origin.run_id = fields.string("run_id");
  if (fields.has("run_dir")) origin.run_dir = fields.string("run_dir");
  if (fields.has("step")) origin.step = fields.integer("step", -1);
  if (fields.has("format") && fields.string("format") == "xlhost") {  // a native export: the model's own names
    origin.format = WeightsFormat::kSafetensors;
    origin.weights_file = (dir / kHuggingFaceWeights).string();
  }
}

bool has_extension(const fs::path& p, std::initializer_list<const char*> extensions) {
  for (const char* e : extensions)
    if (p.extension() == e) return true;
  return false;
}

}  // namespace

WeightsOrigin locate_weights(const std::string& path) {
  WeightsOrigin origin;
  origin.path = path;
  const fs::path p(path);
  if (!fs::exists(p)) throw UserError("--init-from " + path + ": no such file or directory");
  if (fs::is_directory(p)) {
    const bool checkpoint = fs::exists(CheckpointFolder(p).state()) || fs::exists(RunDirectory(p).checkpoints()) ||
                            fs::exists(p / "latest");
    if (checkpoint) {
      const CheckpointFolder folder(resolve_checkpoint(path));
      origin.format = WeightsFormat::kXlhostCheckpoint;
      origin.weights_file = folder.weights().string();
      origin.step = read_checkpoint_state(folder.root().string()).step;
      set_run(origin, folder);
    } else if (fs::exists(p / "config.json") &&
               (fs::exists(p / kHuggingFaceWeights) || fs::exists(p / kHuggingFaceWeightsIndex))) {
      origin.format = WeightsFormat::kHuggingFace;
      origin.weights_file = (p / (fs::exists(p / kHuggingFaceWeights) ? kHuggingFaceWeights : kHuggingFaceWeightsIndex)).string();
      read_export_source(origin, p);
    } else {
      throw UserError("--init-from " + path + ": a directory that is neither an xlhost run or checkpoint (state.json, "
                      "checkpoints/) nor a Hugging Face folder (config.json with model.safetensors)");
    }
  } else if (has_extension(p, {".pth", ".pt", ".bin", ".ckpt"})) {
    origin.format = WeightsFormat::kTorchStateDict;
    origin.weights_file = path;
  } else if (has_extension(p, {".safetensors"})) {
    origin.format = WeightsFormat::kSafetensors;
    origin.weights_file = path;
  } else {
    throw UserError("--init-from " + path + ": expected an xlhost run or checkpoint directory, a Hugging Face folder, "
                    "a PyTorch state dict (.pth, .pt, .bin) or a .safetensors file");
  }
  require_regular_file(origin.weights_file, "weights");
  origin.checksum = checksum_file(origin.weights_file);
  return origin;
}

std::string describe_origin(const WeightsOrigin& o) {
  std::string text;
  if (!o.run_id.empty()) text = "run " + o.run_id + (o.step >= 0 ? " step " + std::to_string(o.step) : "") + " (";
  text += std::string(format_name(o.format)) + " " + o.path + ", xxh3 " + o.checksum.substr(0, 12);
  return text + (o.run_id.empty() ? "" : ")");
}

}  // namespace xlhost::core
