// Writes the trainer's step records, evaluations and fact-recall results to train.log.
#pragma once

#include <filesystem>

#include "xlhost/core/experiments/train_log.hpp"
#include "xlhost/core/train/training_observer.hpp"

namespace xlhost::core {

class TrainLogObserver final : public TrainingObserver {
 public:
  TrainLogObserver(const std::filesystem::path& path, std::optional<int64_t> resumed_at) : log_(path, resumed_at) {}
  void on_step(const StepRecord& r) override;  // writes log_line steps only
  void on_eval(int64_t step, const EvalResult& r) override;
  void on_fact_recall(int64_t step, const FactRecall& r) override;

 private:
  TrainLogWriter log_;
};

}  // namespace xlhost::core
