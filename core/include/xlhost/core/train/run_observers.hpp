// The observers of a training run: train.log and the console's progress line, which the
// trainer keeps itself (a run folder is complete whoever starts the run), and the
// Prometheus metrics, which the command that starts a run builds (run_metrics) and hands in.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <ostream>
#include <vector>

#include "xlhost/core/config/options.hpp"
#include "xlhost/core/experiments/train_log.hpp"
#include "xlhost/core/metrics/metrics_registry.hpp"
#include "xlhost/core/run/training_observer.hpp"
#include "xlhost/core/util/progress.hpp"

namespace xlhost::core {

// Writes the step records, evaluations and fact-recall results to train.log. The file is
// opened when the run starts: a resumed run first drops what was logged after its checkpoint
// (those steps are trained again).
class TrainLogObserver final : public TrainingObserver {
 public:
  explicit TrainLogObserver(std::filesystem::path path) : path_(std::move(path)) {}
  void on_start(const RunStart& start) override;
  void on_step(const StepRecord& r) override;  // writes log_line steps only
  void on_eval(int64_t step, const EvalResult& r) override;
  void on_fact_recall(int64_t step, const FactRecall& r) override;

 private:
  std::filesystem::path path_;
  std::optional<TrainLogWriter> log_;
};

// The console: an in-place progress line, evaluation notes and checkpoint lines.
class ProgressReport final : public TrainingObserver {
 public:
  ProgressReport(std::ostream& log, int64_t total_steps, int64_t first_step)
      : log_(log), line_(log, total_steps, first_step), total_steps_(total_steps) {}
  void on_step(const StepRecord& r) override;
  void on_eval(int64_t step, const EvalResult& r) override;
  void on_checkpoint(const std::string& dir, double seconds) override;
  ProgressLine& line() { return line_; }

 private:
  std::ostream& log_;
  ProgressLine line_;
  int64_t total_steps_;
};

// The training metrics of one rank in `registry`, labelled with the experiment, the plugin
// and the rank: what `xlhost run` hands the trainer when it serves metrics.
std::unique_ptr<TrainingObserver> run_metrics(const RunConfig& config, const std::string& plugin_name, int rank,
                                              metrics::Registry& registry);

}  // namespace xlhost::core
