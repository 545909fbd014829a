#include "xlhost/core/eval/trained_model.hpp"

#include <filesystem>
#include <iostream>

#include "xlhost/core/checkpoint/checkpoint.hpp"
#include "xlhost/core/device/autocast.hpp"
#include "xlhost/core/plugin/model_source.hpp"
#include "xlhost/core/util/error.hpp"

namespace xlhost::core {

TrainedModel load_trained_model(const std::string& path, const std::string& plugin_override,
                                const std::vector<std::string>& overrides) {
  for (const auto& o : overrides)  // the bank is a trained buffer: another file cannot replace it here
    if (o.rfind("data.knowledge_path=", 0) == 0)
      throw UserError("--set " + o + ": a trained model's memory bank comes from its checkpoint, so this cannot take "
                      "effect; to measure what the bank contributes use `xlhost eval --ablate memory=...`");
  const std::string dir = resolve_checkpoint(path, &std::cerr);
  const auto state = read_checkpoint_state(dir);
  const std::string plugin_path = plugin_override.empty() ? state.plugin_path : plugin_override;
  TrainedModel t{dir, load_plugin(plugin_path), RunConfig{}, nullptr, nullptr, torch::kCPU};
  if (t.plugin.descriptor().name != state.plugin_name)
    throw UserError(plugin_path + ": plugin " + t.plugin.descriptor().name + " cannot load a checkpoint of " +
                    state.plugin_name);
  t.config = Config::parse(read_checkpoint_config(dir), dir + "/config.json", full_schema(t.plugin.descriptor().schema),
                           overrides);
  auto setup = set_up_model(model_source(t.plugin), t.config);
  t.device = setup.device;
  t.autocast = uses_bf16_autocast(t.config.options.train.dtype, t.device);
  if (auto warning = bf16_speed_warning(t.autocast, t.device); !warning.empty()) std::cerr << "warning: " << warning << "\n";
  t.tokenizer = std::move(setup.tokenizer);
  t.model = setup.model;
  load_model_weights(*t.model, CheckpointFolder(dir).weights().string());
  t.model->to(t.device);
  t.model->eval();
  return t;
}

}  // namespace xlhost::core
