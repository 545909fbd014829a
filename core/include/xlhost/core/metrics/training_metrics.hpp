// The training loop's view of the metrics registry: every family is registered once with
// the run's labels (experiment, plugin, rank), then updated with plain atomic stores. The
// command that starts a run builds it and hands it to the trainer as an observer.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "xlhost/core/metrics/metrics_registry.hpp"
#include "xlhost/core/run/training_observer.hpp"

namespace xlhost::core {

class TrainingMetrics final : public TrainingObserver {
 public:
  // peak_flops: the device's peak FLOP/s for xl_train_mfu_ratio; 0 = measured when the run
  // starts (measure_peak_flops), negative = not exported.
  TrainingMetrics(metrics::Registry& registry, metrics::Labels labels, double peak_flops = -1);
  // The model's FLOPs per token, the step count and, on a GPU, its memory gauges.
  void on_start(const RunStart& start) override;
  void on_step(const StepRecord& r) override;
  void on_eval(int64_t step, const EvalResult& r) override;
  void on_fact_recall(int64_t step, const FactRecall& r) override;
  void on_checkpoint(const std::string& dir, double seconds) override;

 private:
  void update_memory();  // process RSS and, on a GPU, the caching allocator's figures

  metrics::Registry& registry_;
  metrics::Labels labels_;
  std::map<std::string, metrics::Gauge*> diagnostics_;  // registered on first sight
  double flops_per_token_ = 0, peak_flops_;
  metrics::Counter &steps_, &tokens_, &samples_, &skipped_, &checkpoints_;
  metrics::Gauge &step_, &total_steps_, &loss_, &aux_loss_, &lr_, &grad_norm_, &tokens_per_second_, &mfu_, &rss_, &eval_loss_,
      &eval_perplexity_, &fact_recall_;
  metrics::Histogram &step_seconds_, &forward_seconds_, &backward_seconds_, &optimizer_seconds_, &checkpoint_seconds_;
  int cuda_device_ = -1;
  metrics::Gauge *cuda_allocated_ = nullptr, *cuda_reserved_ = nullptr, *cuda_peak_ = nullptr;
};

}  // namespace xlhost::core
