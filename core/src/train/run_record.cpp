#include "xlhost/core/train/run_record.hpp"

namespace xlhost::core {

RunDescription describe_run(const RunConfig& config, const std::string& config_path, const std::string& command_line,
                            const std::string& metrics_url) {
  const auto& options = config.options;
  const auto& data = options.data;
  RunDescription run;
  run.run_dir = options.run_directory().root().string();
  run.id = options.experiment.id, run.description = options.experiment.description;
  run.config_json = config.values.to_json();
  run.config_path = config_path, run.command_line = command_line, run.metrics_url = metrics_url;
  run.data_files = {data.train_path, data.val_path, data.knowledge_path};
  if (!options.train.init_from.empty()) run.parent = locate_weights(options.train.init_from);
  return run;
}

PluginIdentity plugin_identity(const LoadedPlugin& plugin) {
  return {plugin.path(), plugin.descriptor().name, plugin.descriptor().version, plugin.torch_version(),
          plugin.abi_version()};
}

}  // namespace xlhost::core
