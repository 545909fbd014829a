// train.log, the run's JSON-lines history: one line per logged step (loss, lr, gradient
// norm, throughput, time split, plugin diagnostics), per evaluation and per fact-recall
// result. exp report and exp compare read it back.
#pragma once

#include <fstream>
#include <string>

#include "xlhost/core/training_observer.hpp"

namespace xlhost::core {

class TrainLogWriter final : public TrainingObserver {
 public:
  // append: continue the file of a resumed run; otherwise start it afresh.
  TrainLogWriter(const std::string& path, bool append);
  void on_step(const StepRecord& r) override;  // writes log_line steps only
  void on_eval(int64_t step, const EvalResult& r) override;
  void on_fact_recall(int64_t step, const FactRecall& r) override;

 private:
  std::ofstream out_;
};

}  // namespace xlhost::core
