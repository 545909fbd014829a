#include "xlhost/core/checkpoint/checkpoint.hpp"

#include <fcntl.h>
#include <rapidjson/document.h>
#include <rapidjson/prettywriter.h>
#include <rapidjson/stringbuffer.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

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

// Model, optimizer moments (two per parameter) and some slack must fit on the disk.
void require_free_space(const fs::path& root, sdk::Model& model) {
  uint64_t model_bytes = 0;
  for (const auto& [name, t] : state_tensors(model)) model_bytes += static_cast<uint64_t>(t.numel() * t.element_size());
  const uint64_t needed = 3 * model_bytes + (1 << 20);
  const auto space = fs::space(root);
  if (space.available < needed)
    throw UserError(std::to_string(space.available >> 20) + " MiB free on " + root.string() + ", a checkpoint needs about " +
                    std::to_string(needed >> 20) + " MiB");
}

std::string state_json(const CheckpointState& s) {
  rapidjson::StringBuffer buffer;
  rapidjson::PrettyWriter<rapidjson::StringBuffer> w(buffer);
  w.StartObject();
  w.Key("step"), w.Int64(s.step);
  w.Key("micro_batches"), w.Int64(s.micro_batches);
  w.Key("tokens"), w.Int64(s.tokens);
  w.Key("windows_per_micro_batch"), w.Int64(s.windows_per_micro_batch);
  w.Key("plugin_name"), w.String(s.plugin_name.c_str());
  w.Key("plugin_version"), w.String(s.plugin_version.c_str());
  w.Key("plugin_path"), w.String(s.plugin_path.c_str());
  w.Key("run_uid"), w.String(s.run_uid.c_str());
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

CheckpointWriter::CheckpointWriter(std::string checkpoints_dir, int64_t keep)
    : dir_(std::move(checkpoints_dir)), keep_(std::max<int64_t>(1, keep)) {}

std::string CheckpointWriter::write(sdk::Model& model, torch::optim::Optimizer& optimizer, const CheckpointState& state,
                                    const std::string& config_json) {
  const fs::path root(dir_);
  const std::string name = checkpoint_name(state.step);
  const fs::path tmp = root / (".tmp-" + name), final_dir = root / name;
  try {
    fs::create_directories(root);
    require_free_space(root, model);
    fs::remove_all(tmp);
    fs::create_directories(tmp);
    write_files(tmp, model, optimizer, state, config_json);
    write_manifest(tmp);  // last: its presence marks a complete checkpoint
    fsync_path(tmp.string());
    commit(tmp, final_dir);
    write_file_atomically((root / "latest").string(), name + "\n");
    fsync_path(root.string());
  } catch (const std::exception& e) {
    std::error_code ignored;
    fs::remove_all(tmp, ignored);
    throw UserError("checkpoint " + final_dir.string() + " not written (the previous one is kept): " + e.what());
  }
  written_.insert(state.step);
  retain(state.step);
  return final_dir.string();
}

void CheckpointWriter::write_files(const fs::path& dir, sdk::Model& model, torch::optim::Optimizer& optimizer,
                                   const CheckpointState& state, const std::string& config_json) {
  const CheckpointFolder folder(dir);
  save_safetensors(folder.weights().string(), state_tensors(model),
                   {{"format", "pt"}, {"plugin", state.plugin_name}, {"plugin_version", state.plugin_version}});
  // LibTorch's archive writer raises from its destructor when the disk fills; serialised
  // in memory and written here, every failure is an exception with the file's name.
  auto save = [&](const fs::path& file, auto&& value) {
    std::ostringstream bytes;
    torch::save(value, bytes);
    write_file(file.string(), bytes.str());
  };
  save(folder.optimizer(), optimizer);
  save(folder.rng(), at::detail::getDefaultCPUGenerator().get_state());
  if (torch::cuda::is_available()) save(folder.cuda_rng(), cuda_rng_states());
  write_file(folder.state().string(), state_json(state));
  write_file(folder.config().string(), config_json);
}

// tmp becomes final_dir in one rename. A checkpoint already there (a resumed run writing
// the same step again) is exchanged atomically and removed after, so no moment exists
// without a complete step directory.
void CheckpointWriter::commit(const fs::path& tmp, const fs::path& final_dir) {
  if (!fs::exists(final_dir)) {
    fs::rename(tmp, final_dir);
    return;
  }
  if (::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, final_dir.c_str(), RENAME_EXCHANGE) != 0)
    throw UserError(final_dir.string() + ": cannot replace (" + std::strerror(errno) + ")");
  std::error_code ignored;  // committed already: a leftover old copy is not a failure
  fs::remove_all(tmp, ignored);
}

// Keeps `keep` checkpoints: those of earlier runs in this folder go first (lowest step
// first), then this run's own oldest. The one just written is never removed.
void CheckpointWriter::retain(int64_t newest) {
  std::vector<std::pair<int64_t, fs::path>> earlier, own;
  for (const auto& dir : list_checkpoints(dir_)) {
    const int64_t step = *checkpoint_step(dir.filename().string());
    if (step != newest) (written_.count(step) ? own : earlier).emplace_back(step, dir);
  }
  auto oldest_first = [](auto& a, auto& b) { return a.first < b.first; };
  std::sort(earlier.begin(), earlier.end(), oldest_first);
  std::sort(own.begin(), own.end(), oldest_first);
  std::vector<fs::path> order;
  for (auto& e : earlier) order.push_back(e.second);
  for (auto& o : own) order.push_back(o.second);
  const size_t keep_others = static_cast<size_t>(keep_ - 1);
  for (size_t i = 0; i + keep_others < order.size(); ++i) {
    // Renamed out of the step_N names first: a kill while the files go leaves a folder no
    // lookup takes for a checkpoint, never a step_N without some of its files.
    const fs::path aside = order[i].parent_path() / (".pruned-" + order[i].filename().string());
    fs::remove_all(aside);
    fs::rename(order[i], aside);
    fs::remove_all(aside);
  }
}

void assign_weights(sdk::Model& model, std::map<std::string, torch::Tensor> tensors, const std::string& source,
                    const std::vector<std::pair<std::string, std::string>>& tied_copies) {
  std::vector<std::string> problems;
  for (const auto& [copy, original] : tied_copies) {
    auto c = tensors.find(copy), o = tensors.find(original);
    if (c == tensors.end() || o == tensors.end()) continue;
    if (c->second.sizes() != o->second.sizes() || !torch::equal(c->second, o->second.to(c->second.dtype())))
      problems.push_back(copy + " differs from " + original + ", which the model ties to it");
    tensors.erase(c);
  }
  torch::NoGradGuard no_grad;
  auto copy_into = [&](const std::string& name, torch::Tensor& target) {
    auto it = tensors.find(name);
    if (it == tensors.end()) return problems.push_back("missing " + name + " " + c10::str(target.sizes()));
    if (it->second.sizes() != target.sizes())
      problems.push_back(name + " has shape " + c10::str(it->second.sizes()) + ", the model's is " +
                         c10::str(target.sizes()));
    else if (!it->second.is_floating_point() && target.is_floating_point())
      problems.push_back(name + " holds " + std::string(c10::toString(it->second.scalar_type())) + ", not floating point");
    else
      target.copy_(it->second);
    tensors.erase(it);
  };
  for (auto& p : model.named_parameters()) copy_into(p.key(), p.value());
  for (auto& b : model.named_buffers()) copy_into(b.key(), b.value());
  for (const auto& extra : tensors) problems.push_back("unexpected " + extra.first + " " + c10::str(extra.second.sizes()));
  if (!problems.empty()) {
    std::string message = source + ": weights do not fit the model (" + std::to_string(problems.size()) + " problems):";
    for (size_t i = 0; i < problems.size() && i < 20; ++i) message += "\n  " + problems[i];
    if (problems.size() > 20) message += "\n  ... and " + std::to_string(problems.size() - 20) + " more";
    throw UserError(message);
  }
}

void load_model_weights(sdk::Model& model, const std::string& path) {
  assign_weights(model, load_safetensors(path), path);
}

void load_optimizer_state(torch::optim::Optimizer& optimizer, const std::string& dir) {
  torch::load(optimizer, CheckpointFolder(dir).optimizer().string());
}

void restore_rng_state(const std::string& dir) {
  torch::Tensor state;
  const CheckpointFolder folder(dir);
  torch::load(state, folder.rng().string());
  at::Generator generator = at::detail::getDefaultCPUGenerator();
  generator.set_state(state);
  // A GPU run's CUDA generators (dropout on the GPU); a GPU checkpoint resumed on the CPU
  // needs none of them.
  const fs::path cuda_file = folder.cuda_rng();
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
