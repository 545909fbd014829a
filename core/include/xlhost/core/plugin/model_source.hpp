// Where models come from — a plugin's factory, or one written in process (tests) — and
// how every command that runs a model makes one from the config.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <memory>
#include <string>

#include "xlhost/core/config/options.hpp"
#include "xlhost/core/data/tokenizer.hpp"
#include "xlhost/core/plugin/plugin_loader.hpp"

namespace xlhost::core {

struct ModelSource {
  sdk::PluginDescriptor descriptor;
  std::string path;  // the plugin file; empty for an in-process factory
  std::function<std::shared_ptr<sdk::Model>(const sdk::ModelConfig&)> create;
};
// The factory keeps the plugin's library loaded for as long as the source lives.
ModelSource model_source(const LoadedPlugin& plugin);

// What every command that runs a model starts with: the config's threads and device,
// its tokenizer, and a freshly made model (not yet on the device).
struct ModelSetup {
  std::shared_ptr<sdk::Model> model;
  std::unique_ptr<Tokenizer> tokenizer;
  torch::Device device = torch::kCPU;
};
ModelSetup set_up_model(const ModelSource& source, const RunConfig& config);

// train.device resolved: cuda when asked for (UserError when there is none), or auto with a GPU.
torch::Device resolve_device(const std::string& name);

}  // namespace xlhost::core
