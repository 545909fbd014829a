#include "xlhost/core/train/run_record.hpp"

namespace xlhost::core {

RunDescription describe_run(const Config& config, const std::string& config_path, const std::string& command_line,
                            const std::string& metrics_url) {
  const auto options = Options::from(config);
  const auto& data = options.data;
  RunDescription run;
  run.run_dir = options.run_directory().root().string();
  run.id = options.experiment.id, run.description = options.experiment.description;
  run.config_json = config.to_json();
  run.config_path = config_path, run.command_line = command_line, run.metrics_url = metrics_url;
  run.data_files = {data.train_path, data.val_path, data.knowledge_path};
  if (!options.train.init_from.empty()) run.parent = locate_weights(options.train.init_from);
  return run;
}

PluginIdentity plugin_identity(const LoadedPlugin& plugin) {
  return {plugin.path(), plugin.descriptor().name, plugin.descriptor().version, plugin.torch_version(),
          plugin.abi_version()};
}

RunResults run_results(const TrainSummary& s) {
  RunResults r;
  r.first_step = s.first_step, r.steps = s.steps, r.parameters = s.parameters;
  r.parameters_receiving_gradient = s.parameters_receiving_gradient, r.dead_parameters = s.dead_parameters;
  r.warnings = s.warnings, r.skipped_steps = s.skipped_steps;
  r.losses = s.losses;
  r.final_aux_loss = s.final_aux_loss;
  if (s.val.tokens > 0) r.val_loss = s.val.loss, r.val_perplexity = s.val.perplexity;
  if (s.facts.facts > 0)
    r.fact_recall = s.facts.rate(), r.fact_recall_seen = s.facts.seen_rate(), r.fact_recall_unseen = s.facts.unseen_rate();
  r.tokens_per_second = s.tokens_per_second, r.wall_seconds = s.wall_seconds;
  r.step_seconds = s.step_seconds, r.forward_seconds = s.forward_seconds;
  r.backward_seconds = s.backward_seconds, r.optimizer_seconds = s.optimizer_seconds;
  r.communication_seconds = s.communication_seconds;
  r.peak_rss_bytes = s.peak_rss_bytes, r.peak_cuda_bytes = s.peak_cuda_bytes;
  r.checkpoint = s.checkpoint;
  return r;
}

}  // namespace xlhost::core
