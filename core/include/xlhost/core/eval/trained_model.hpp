#pragma once

#include <memory>
#include <string>
#include <vector>

#include "xlhost/core/config/options.hpp"
#include "xlhost/core/data/tokenizer.hpp"
#include "xlhost/core/plugin/plugin_loader.hpp"

namespace xlhost::core {

// A model rebuilt from a checkpoint: its plugin (recorded path unless overridden), its
// resolved config (plus overrides) and its weights, in eval mode on the config's device.
struct TrainedModel {
  std::string checkpoint;
  LoadedPlugin plugin;
  RunConfig config;
  std::shared_ptr<sdk::Model> model;
  std::unique_ptr<Tokenizer> tokenizer;
  torch::Device device = torch::kCPU;
  bool autocast = false;  // the run's train.dtype means bfloat16 autocast here: forwards run under AutocastScope
};

TrainedModel load_trained_model(const std::string& checkpoint_or_run_dir, const std::string& plugin_override,
                                const std::vector<std::string>& overrides);

}  // namespace xlhost::core
