// The bridge from training to the torch-free experiments library: the record's inputs
// built from the config, the loaded plugin and the trainer's summary.
#pragma once

#include <string>

#include "xlhost/core/config/config.hpp"
#include "xlhost/core/experiments/experiment_record.hpp"
#include "xlhost/core/plugin/plugin_loader.hpp"
#include "xlhost/core/train/trainer.hpp"

namespace xlhost::core {

RunDescription describe_run(const Config& config, const std::string& config_path, const std::string& command_line,
                            const std::string& metrics_url = "");
PluginIdentity plugin_identity(const LoadedPlugin& plugin);
RunResults run_results(const TrainSummary& summary);

}  // namespace xlhost::core
