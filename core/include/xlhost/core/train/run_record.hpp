// The bridge from training to the torch-free experiments library: the record's inputs
// built from the config and the loaded plugin. A TrainSummary is the record's RunResults.
#pragma once

#include <string>

#include "xlhost/core/config/options.hpp"
#include "xlhost/core/experiments/experiment_record.hpp"
#include "xlhost/core/plugin/plugin_loader.hpp"

namespace xlhost::core {

RunDescription describe_run(const RunConfig& config, const std::string& config_path, const std::string& command_line,
                            const std::string& metrics_url = "");
PluginIdentity plugin_identity(const LoadedPlugin& plugin);

}  // namespace xlhost::core
