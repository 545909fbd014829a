#include "xlhost/core/metrics/training_metrics.hpp"

#include <cmath>

#include "xlhost/core/device/device_info.hpp"

namespace xlhost::core {

namespace {

const std::vector<double>& seconds_buckets() {
  static const std::vector<double> buckets = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                              1,     2.5,    5,     10,   30,    60,   120, 300, 600};
  return buckets;
}

}  // namespace

TrainingMetrics::TrainingMetrics(metrics::Registry& r, metrics::Labels l, double peak_flops)
    : registry_(r),
      labels_(l),
      peak_flops_(peak_flops),
      steps_(r.counter("xl_train_steps_total", "Optimizer steps completed.", l)),
      tokens_(r.counter("xl_train_tokens_total", "Training tokens processed.", l)),
      samples_(r.counter("xl_train_samples_total", "Training sequences processed.", l)),
      skipped_(r.counter("xl_train_skipped_steps_total", "Steps whose update was skipped (non-finite or spiking loss or gradient norm).", l)),
      checkpoints_(r.counter("xl_checkpoint_writes_total", "Checkpoints written.", l)),
      step_(r.gauge("xl_train_step", "Current optimizer step.", l)),
      total_steps_(r.gauge("xl_train_total_steps", "Optimizer steps this run will take.", l)),
      loss_(r.gauge("xl_train_loss", "Training cross-entropy of the last step (the plugin's auxiliary loss is xl_train_aux_loss).", l)),
      aux_loss_(r.gauge("xl_train_aux_loss", "The plugin's auxiliary loss of the last step, minimised with the cross-entropy; absent when it has none.", l)),
      lr_(r.gauge("xl_train_learning_rate", "Learning rate of the last step.", l)),
      grad_norm_(r.gauge("xl_train_grad_norm", "Global gradient L2 norm before clipping.", l)),
      tokens_per_second_(r.gauge("xl_train_tokens_per_second", "Training throughput since the last log line.", l)),
      mfu_(r.gauge("xl_train_mfu_ratio", "Model FLOP utilisation: achieved over peak FLOP/s, 0-1.", l)),
      rss_(r.gauge("xl_process_resident_memory_bytes", "Resident memory of the process.", l)),
      eval_loss_(r.gauge("xl_eval_loss", "Held-out loss of the last evaluation.", l)),
      eval_perplexity_(r.gauge("xl_eval_perplexity", "Held-out perplexity of the last evaluation.", l)),
      fact_recall_(r.gauge("xl_eval_fact_recall_ratio", "Share of facts whose greedy completion is right, 0-1.", l)),
      step_seconds_(r.histogram("xl_train_step_seconds", "Wall time of an optimizer step.", seconds_buckets(), l)),
      forward_seconds_(r.histogram("xl_train_forward_seconds", "Forward time of a step.", seconds_buckets(), l)),
      backward_seconds_(r.histogram("xl_train_backward_seconds", "Backward time of a step.", seconds_buckets(), l)),
      optimizer_seconds_(r.histogram("xl_train_optimizer_seconds", "Clipping and optimizer update time of a step.",
                                     seconds_buckets(), l)),
      checkpoint_seconds_(r.histogram("xl_checkpoint_write_seconds", "Time to write a checkpoint.", seconds_buckets(), l)) {
  update_memory();
}

void TrainingMetrics::on_start(const RunStart& start) {
  total_steps_.set(static_cast<double>(start.total_steps));
  flops_per_token_ = start.flops_per_token;
  if (peak_flops_ == 0) peak_flops_ = measure_peak_flops(start.cuda_device >= 0);
  cuda_device_ = start.cuda_device;
  if (cuda_device_ >= 0) {
    cuda_allocated_ = &registry_.gauge("xl_cuda_memory_allocated_bytes", "CUDA memory held by tensors.", labels_);
    cuda_reserved_ = &registry_.gauge("xl_cuda_memory_reserved_bytes", "CUDA memory reserved by LibTorch's caching allocator.", labels_);
    cuda_peak_ = &registry_.gauge("xl_cuda_memory_peak_allocated_bytes", "Most CUDA memory held by tensors so far.", labels_);
  }
  update_memory();
}

void TrainingMetrics::update_memory() {
  rss_.set(static_cast<double>(resident_memory_bytes()));
  if (cuda_device_ < 0) return;
  const auto m = cuda_memory(cuda_device_);
  cuda_allocated_->set(static_cast<double>(m.allocated));
  cuda_reserved_->set(static_cast<double>(m.reserved));
  cuda_peak_->set(static_cast<double>(m.peak_allocated));
}

void TrainingMetrics::on_step(const StepRecord& s) {
  steps_.increment();
  tokens_.increment(static_cast<double>(s.tokens));
  samples_.increment(static_cast<double>(s.samples));
  if (s.skipped()) skipped_.increment();
  step_.set(static_cast<double>(s.step));
  loss_.set(s.loss);
  if (!std::isnan(s.aux_loss)) aux_loss_.set(s.aux_loss);
  lr_.set(s.lr);
  grad_norm_.set(s.grad_norm);
  step_seconds_.observe(s.step_seconds);
  forward_seconds_.observe(s.forward_seconds);
  backward_seconds_.observe(s.backward_seconds);
  optimizer_seconds_.observe(s.optimizer_seconds);
  if (s.tokens_per_second > 0) {
    tokens_per_second_.set(s.tokens_per_second);
    if (peak_flops_ > 0) mfu_.set(s.tokens_per_second * flops_per_token_ / peak_flops_);
    update_memory();
  }
  for (const auto& [name, value] : s.diagnostics) {
    auto& gauge = diagnostics_[name];
    if (!gauge) gauge = &registry_.gauge("xl_model_" + name, "Plugin diagnostic " + name + ".", labels_);
    gauge->set(value);
  }
}

void TrainingMetrics::on_eval(int64_t, const EvalResult& r) {
  eval_loss_.set(r.loss);
  eval_perplexity_.set(r.perplexity);
}

void TrainingMetrics::on_fact_recall(int64_t, const FactRecall& r) { fact_recall_.set(r.rate()); }

void TrainingMetrics::on_checkpoint(const std::string&, double seconds) {
  checkpoints_.increment();
  checkpoint_seconds_.observe(seconds);
}

}  // namespace xlhost::core
