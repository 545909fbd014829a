// Which optimizer steps must not be applied: a non-finite loss or gradient norm, or a loss
// or gradient norm spiking above the rolling mean + k·σ of the last accepted steps. A
// skipped step leaves parameters and optimizer state as they were; too many in a row
// mean the run has diverged.
#pragma once

#include <cstdint>
#include <deque>
#include <string>

namespace xlhost::core {

class StepGuard {
 public:
  // sigma 0 turns spike detection off; spikes are judged only once `window` steps were accepted.
  StepGuard(double sigma, int64_t window, int64_t max_bad_steps);
  // Why this step must be skipped, or "" to apply it. Records the verdict.
  std::string judge(double loss, double grad_norm);
  bool diverged() const { return max_bad_ > 0 && consecutive_bad_ >= max_bad_; }
  int64_t consecutive_bad() const { return consecutive_bad_; }

 private:
  struct Rolling {
    std::deque<double> values;
    double sum = 0, sum_sq = 0;
    void add(double x, size_t window);
    // x above mean + sigma·std of a full window
    bool spikes(double x, double sigma, size_t window) const;
  };
  double sigma_;
  size_t window_;
  int64_t max_bad_, consecutive_bad_ = 0;
  Rolling loss_, grad_norm_;
};

}  // namespace xlhost::core
