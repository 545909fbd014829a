// The training loop: AdamW with warm-up + cosine, gradient accumulation and clipping,
// periodic evaluation and checkpoints, train.log, progress, resume, graceful stop.
#pragma once

#include <cmath>
#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "xlhost/core/config.hpp"
#include "xlhost/core/evaluation.hpp"
#include "xlhost/core/metrics_registry.hpp"
#include "xlhost/core/plugin_loader.hpp"

namespace xlhost::core {

struct TrainJob {
  Config config;
  LoadedPlugin plugin;
  std::string resume_from;  // checkpoint or run directory; empty = fresh start
  // Polled after every optimizer step; true saves a checkpoint and ends the run.
  std::function<bool(int64_t step)> should_stop;
  std::ostream* log = nullptr;  // human-readable progress; nullptr = std::cerr
  metrics::Registry* metrics = nullptr;  // training metrics are registered here when set
  int64_t rank = 0;
};

struct TrainSummary {
  std::string run_dir, checkpoint;
  int64_t parameters = 0;
  int64_t first_step = 0, steps = 0;  // steps run by this call: (first_step, steps]
  int64_t skipped_steps = 0;          // non-finite loss, update skipped
  std::vector<double> losses;         // per optimizer step run by this call: cross-entropy + aux loss
  double final_aux_loss = std::nan("");  // the plugin's aux loss in the last step; NaN when it has none
  EvalResult val;                     // at the end; tokens == 0 when there is no val data
  FactRecall facts;                   // at the end; facts == 0 without eval.facts_path
  double tokens_per_second = 0, wall_seconds = 0;
  // Where the steps' time went, summed over the steps of this call (evaluation and
  // checkpoints excluded): forward + backward + optimizer <= step.
  double step_seconds = 0, forward_seconds = 0, backward_seconds = 0, optimizer_seconds = 0;
  int64_t peak_rss_bytes = 0;
  int64_t peak_cuda_bytes = 0;  // most CUDA memory held by tensors; 0 on the CPU
  bool interrupted = false;
  std::shared_ptr<sdk::Model> model;
  torch::Device device = torch::kCPU;
};

TrainSummary train(const TrainJob& job);

// Learning rate at optimizer step `step` (0-based) of `total`.
double learning_rate(int64_t step, int64_t total, double peak, int64_t warmup, double min_ratio);

// cpu, cuda or auto from the config; throws UserError when cuda is asked for and absent.
torch::Device resolve_device(const std::string& name);

// Applies train.threads (0 = all cores) to LibTorch.
void configure_threads(int64_t threads);

int64_t peak_rss_bytes();

}  // namespace xlhost::core
