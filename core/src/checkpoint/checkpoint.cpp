#include "xlhost/core/checkpoint/checkpoint.hpp"

#include <rapidjson/document.h>
#include <rapidjson/prettywriter.h>
#include <rapidjson/stringbuffer.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "xlhost/core/checkpoint/safetensors.hpp"
#include "xlhost/core/util/error.hpp"
#include "xlhost/core/util/file_io.hpp"

namespace xlhost::core {

namespace fs = std::filesystem;

namespace {

at::Generator cuda_generator(size_t device) {
  return at::globalContext().defaultGenerator(c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(device)));
}

// One generator state per CUDA device.
std::vector<torch::Tensor> cuda_rng_states() {
  std::vector<torch::Tensor> states;
  for (c10::DeviceIndex i = 0; i < torch::cuda::device_count(); ++i)
    states.push_back(cuda_generator(i).get_state());
  return states;
}

std::string step_name(int64_t step) {
  char name[32];
  std::snprintf(name, sizeof name, "step_%08lld", static_cast<long long>(step));
  return name;
}

std::string state_json(const CheckpointState& s) {
  rapidjson::StringBuffer buffer;
  rapidjson::PrettyWriter<rapidjson::StringBuffer> w(buffer);
  w.StartObject();
  w.Key("step"), w.Int64(s.step);
  w.Key("micro_batches"), w.Int64(s.micro_batches);
  w.Key("tokens"), w.Int64(s.tokens);
  w.Key("plugin_name"), w.String(s.plugin_name.c_str());
  w.Key("plugin_version"), w.String(s.plugin_version.c_str());
  w.Key("plugin_path"), w.String(s.plugin_path.c_str());
  w.EndObject();
  return std::string(buffer.GetString()) + "\n";
}

}  // namespace

std::vector<std::pair<std::string, torch::Tensor>> state_tensors(sdk::Model& model) {
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (const auto& p : model.named_parameters()) tensors.emplace_back(p.key(), p.value());
  for (const auto& b : model.named_buffers()) tensors.emplace_back(b.key(), b.value());
  return tensors;
}

std::string write_checkpoint(const std::string& checkpoints_dir, sdk::Model& model, torch::optim::Optimizer& optimizer,
                             const CheckpointState& state, const std::string& config_json, int64_t keep) {
  const fs::path root(checkpoints_dir);
  const std::string name = step_name(state.step);
  const fs::path tmp = root / (".tmp-" + name), final_dir = root / name;
  fs::remove_all(tmp);
  fs::create_directories(tmp);

  save_safetensors((tmp / "model.safetensors").string(), state_tensors(model),
                   {{"format", "pt"}, {"plugin", state.plugin_name}, {"plugin_version", state.plugin_version}});
  torch::save(optimizer, (tmp / "optimizer.pt").string());
  torch::save(at::detail::getDefaultCPUGenerator().get_state(), (tmp / "rng.pt").string());
  if (torch::cuda::is_available()) torch::save(cuda_rng_states(), (tmp / "cuda_rng.pt").string());
  {
    std::ofstream(tmp / "state.json") << state_json(state);
    std::ofstream(tmp / "config.json") << config_json;
  }
  for (const auto& entry : fs::directory_iterator(tmp)) fsync_path(entry.path().string());
  fsync_path(tmp.string());
  fs::remove_all(final_dir);  // a resumed run may write the same step again
  fs::rename(tmp, final_dir);
  fsync_path(root.string());
  write_file_atomically((root / "latest").string(), name + "\n");

  std::vector<fs::path> existing;
  for (const auto& entry : fs::directory_iterator(root))
    if (entry.is_directory() && entry.path().filename().string().rfind("step_", 0) == 0) existing.push_back(entry.path());
  std::sort(existing.begin(), existing.end());
  for (size_t i = 0; i + static_cast<size_t>(keep) < existing.size(); ++i) fs::remove_all(existing[i]);
  return final_dir.string();
}

void load_model_weights(sdk::Model& model, const std::string& path) {
  auto tensors = load_safetensors(path);
  std::vector<std::string> problems;
  torch::NoGradGuard no_grad;
  auto copy_into = [&](const std::string& name, torch::Tensor& target) {
    auto it = tensors.find(name);
    if (it == tensors.end()) return problems.push_back("missing " + name);
    if (it->second.sizes() != target.sizes())
      return problems.push_back(name + " has shape " + c10::str(it->second.sizes()) + ", model expects " +
                                c10::str(target.sizes()));
    target.copy_(it->second);
    tensors.erase(it);
  };
  for (auto& p : model.named_parameters()) copy_into(p.key(), p.value());
  for (auto& b : model.named_buffers()) copy_into(b.key(), b.value());
  for (const auto& extra : tensors) problems.push_back("unexpected " + extra.first);
  if (!problems.empty()) {
    std::string message = path + ": weights do not fit the model:";
    for (size_t i = 0; i < problems.size() && i < 10; ++i) message += "\n  " + problems[i];
    if (problems.size() > 10) message += "\n  ... and " + std::to_string(problems.size() - 10) + " more";
    throw UserError(message);
  }
}

void load_optimizer_state(torch::optim::Optimizer& optimizer, const std::string& dir) {
  torch::load(optimizer, (fs::path(dir) / "optimizer.pt").string());
}

void restore_rng_state(const std::string& dir) {
  torch::Tensor state;
  torch::load(state, (fs::path(dir) / "rng.pt").string());
  at::Generator generator = at::detail::getDefaultCPUGenerator();
  generator.set_state(state);
  // A GPU run's CUDA generators (dropout on the GPU); a GPU checkpoint resumed on the CPU
  // needs none of them.
  const fs::path cuda_file = fs::path(dir) / "cuda_rng.pt";
  if (!torch::cuda::is_available() || !fs::exists(cuda_file)) return;
  std::vector<torch::Tensor> states;
  torch::load(states, cuda_file.string());
  const auto devices = std::min<size_t>(states.size(), torch::cuda::device_count());
  for (size_t i = 0; i < devices; ++i) {
    auto generator = cuda_generator(i);
    std::lock_guard<std::mutex> lock(generator.mutex());
    generator.set_state(states[i]);
  }
}

}  // namespace xlhost::core
