// One optimizer step's numbers: what the trainer measures, what its observers receive, and
// what a train.log step line holds when read back (experiments/train_log.cpp names the keys).
// A new per-step figure is a member here, set in Trainer::train_step and given a key in
// train_log.cpp's table.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace xlhost::core {

struct StepRecord {
  int64_t step = 0, total_steps = 0;  // the optimizer step just completed (1-based) of total_steps
  int64_t tokens = 0, samples = 0;    // this step's training tokens and sequences (not in train.log)
  int64_t tokens_seen = 0;            // training tokens consumed since the run began (resumes included)
  double loss = 0;                    // cross-entropy of the step's targets (the number users compare)
  double aux_loss = std::nan("");     // the plugin's auxiliary loss, minimised with it; NaN when it has none
  double lr = 0, grad_norm = 0;
  double step_seconds = 0, forward_seconds = 0, backward_seconds = 0, optimizer_seconds = 0;
  double data_seconds = 0;            // reading the step's windows and moving them to the device
  std::string skip_reason;            // why the update was not applied ("non-finite loss", ...); empty when it was
  bool log_line = false;              // a train.log / progress step (every train.log_interval, and skipped steps)
  double tokens_per_second = 0;       // over the steps since the last log line; set on log_line steps
  // The process as the system sees it, on log_line steps: CPU time over wall time since the
  // last log line (100 = one core busy), resident memory, and on CUDA the memory LibTorch
  // holds and the GPU's utilisation (NVML; NaN without CUDA or NVML).
  double cpu_percent = 0, rss_mib = 0, gpu_memory_mib = std::nan(""), gpu_util_percent = std::nan("");
  // The plugin's named scalars, kept apart so that no name can shadow the trainer's.
  std::vector<std::pair<std::string, double>> diagnostics;

  bool skipped() const { return !skip_reason.empty(); }
  double objective() const { return std::isnan(aux_loss) ? loss : loss + aux_loss; }  // what was minimised
};

}  // namespace xlhost::core
