#include "xlhost/core/plugin/model_source.hpp"

#include <thread>

#include "xlhost/core/config/options.hpp"
#include "xlhost/core/distributed/launch.hpp"
#include "xlhost/core/util/error.hpp"

namespace xlhost::core {

torch::Device resolve_device(const std::string& name) {
  if (name == "cuda" && !torch::cuda::is_available())
    throw UserError("train.device=cuda but LibTorch " TORCH_VERSION " sees no CUDA device on this machine "
                    "(use train.device=cpu, or auto to take a GPU when there is one)");
  if (name == "cuda" || (name == "auto" && torch::cuda::is_available())) return torch::kCUDA;
  return torch::kCPU;
}

namespace {

// threads 0: every core, shared out among the ranks a launcher started on this machine.
void configure_threads(int64_t threads) {
  int n = static_cast<int>(threads);
  if (n <= 0) {
    const auto launch = distributed::launch_environment();
    n = std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / (launch ? launch->local_world_size : 1));
  }
  torch::set_num_threads(n);
}

}  // namespace

ModelSource model_source(const LoadedPlugin& plugin) {
  return {plugin.descriptor(), plugin.path(), [plugin](const sdk::ModelConfig& c) { return plugin.create(c); }};
}

ModelSetup set_up_model(const ModelSource& source, const RunConfig& config) {
  const auto& train = config.options.train;
  configure_threads(train.threads);
  ModelSetup setup;
  setup.device = resolve_device(train.device);
  setup.tokenizer = make_tokenizer(config.options.data.tokenizer);
  setup.model = source.create(config.values.section("model"));
  return setup;
}

}  // namespace xlhost::core
