// What the trainer reports, and to whom: one StepRecord per optimizer step, evaluation
// and fact-recall results, checkpoints. train.log, the Prometheus metrics and the
// progress line are observers; none of them is code inside the training loop.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "xlhost/core/eval/evaluation.hpp"

namespace xlhost::core {

struct StepRecord {
  int64_t step = 0, total_steps = 0;  // the optimizer step just completed (1-based) of total_steps
  int64_t tokens = 0, samples = 0;    // this step's training tokens and sequences
  int64_t tokens_seen = 0;            // training tokens consumed since the run began (resumes included)
  double loss = 0;                    // cross-entropy of the step's targets (the number users compare)
  double aux_loss = std::nan("");     // the plugin's auxiliary loss, minimised with it; NaN when it has none
  double lr = 0, grad_norm = 0;
  double step_seconds = 0, forward_seconds = 0, backward_seconds = 0, optimizer_seconds = 0;
  bool skipped = false;               // the update was not applied (skip_reason says why)
  std::string skip_reason;            // "non-finite loss", "gradient-norm spike (41.2)", ...
  bool log_line = false;              // a train.log / progress step (every train.log_interval, and skipped steps)
  double tokens_per_second = 0;       // over the steps since the last log line; set on log_line steps
  std::vector<std::pair<std::string, double>> diagnostics;  // the plugin's named scalars
};

class TrainingObserver {
 public:
  virtual ~TrainingObserver() = default;
  virtual void on_step(const StepRecord&) {}
  virtual void on_eval(int64_t /*step*/, const EvalResult&) {}
  virtual void on_fact_recall(int64_t /*step*/, const FactRecall&) {}
  virtual void on_checkpoint(const std::string& /*dir*/, double /*seconds*/) {}
};

}  // namespace xlhost::core
