// What the trainer reports, and to whom: the run's start, one StepRecord per optimizer
// step, evaluation and fact-recall results, checkpoints. train.log, the Prometheus metrics
// and the progress line are observers, built by whoever starts the training; none of them
// is code inside the training loop.
#pragma once

#include <cstdint>
#include <string>

#include "xlhost/core/run/run_results.hpp"
#include "xlhost/core/run/step_record.hpp"

namespace xlhost::core {

// What an observer may need to know before the first step.
struct RunStart {
  int64_t first_step = 0;      // steps already done (a resumed run's checkpoint step)
  int64_t total_steps = 0;
  bool resumed = false;        // continues a checkpoint of this run
  int64_t parameters = 0;      // trainable values
  double flops_per_token = 0;  // the model's, at the run's sequence length
  int cuda_device = -1;        // the GPU trained on; -1 on the CPU
};

class TrainingObserver {
 public:
  virtual ~TrainingObserver() = default;
  virtual void on_start(const RunStart&) {}
  virtual void on_step(const StepRecord&) {}
  virtual void on_eval(int64_t /*step*/, const EvalResult&) {}
  virtual void on_fact_recall(int64_t /*step*/, const FactRecall&) {}
  virtual void on_checkpoint(const std::string& /*dir*/, double /*seconds*/) {}
};

}  // namespace xlhost::core
