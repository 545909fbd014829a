#include "xlhost/core/train/run_observers.hpp"

#include <iomanip>

#include "xlhost/core/metrics/training_metrics.hpp"

namespace xlhost::core {

void TrainLogObserver::on_start(const RunStart& start) {
  log_.emplace(path_, start.resumed ? std::optional<int64_t>(start.first_step) : std::nullopt);
}

void TrainLogObserver::on_step(const StepRecord& r) {
  if (r.log_line) log_->write(r);
}

void TrainLogObserver::on_eval(int64_t step, const EvalResult& r) { log_->write(TrainLogEval{step, r.loss, r.perplexity}); }

void TrainLogObserver::on_fact_recall(int64_t step, const FactRecall& r) {
  log_->write(TrainLogFactRecall{step, r.rate(), r.seen_rate(), r.unseen_rate()});
}

void ProgressReport::on_step(const StepRecord& r) {
  if (r.skipped()) {
    line_.finish();
    log_ << "step " << r.step << ": " << r.skip_reason << ", update skipped\n";
  }
  if (r.log_line) line_.update(r.step, r.loss, r.lr, r.tokens_per_second);
}

void ProgressReport::on_eval(int64_t step, const EvalResult& r) {
  if (step < total_steps_)
    line_.note("eval at step " + std::to_string(step) + ": loss " + format_fixed(r.loss, 4) + ", perplexity " +
               format_fixed(r.perplexity, 2));
}

void ProgressReport::on_checkpoint(const std::string& dir, double seconds) {
  line_.finish();
  log_ << "checkpoint " << dir << " (" << std::fixed << std::setprecision(2) << seconds << " s)\n" << std::defaultfloat;
}

std::unique_ptr<TrainingObserver> run_metrics(const RunConfig& config, const std::string& plugin_name, int rank,
                                              metrics::Registry& registry) {
  const auto& options = config.options;
  return std::make_unique<TrainingMetrics>(
      registry,
      metrics::Labels{{"experiment", options.experiment.id}, {"plugin", plugin_name}, {"rank", std::to_string(rank)}},
      options.metrics.peak_flops);
}

}  // namespace xlhost::core
