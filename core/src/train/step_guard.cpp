#include "xlhost/core/train/step_guard.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>

namespace xlhost::core {

void StepGuard::Rolling::add(double x, size_t window) {
  values.push_back(x), sum += x, sum_sq += x * x;
  if (values.size() > window) {
    const double old = values.front();
    values.pop_front(), sum -= old, sum_sq -= old * old;
  }
}

bool StepGuard::Rolling::spikes(double x, double sigma, size_t window) const {
  if (sigma <= 0 || values.size() < window) return false;
  const double n = static_cast<double>(values.size()), mean = sum / n;
  const double sd = std::sqrt(std::max(0.0, sum_sq / n - mean * mean));
  return x > mean + sigma * sd;
}

StepGuard::StepGuard(double sigma, int64_t window, int64_t max_bad_steps)
    : sigma_(sigma), window_(static_cast<size_t>(std::max<int64_t>(1, window))), max_bad_(max_bad_steps) {}

std::string StepGuard::judge(double loss, double grad_norm) {
  std::ostringstream why;
  if (!std::isfinite(loss)) why << "non-finite loss";
  else if (!std::isfinite(grad_norm)) why << "non-finite gradient norm";
  else if (loss_.spikes(loss, sigma_, window_)) why << "loss spike (" << loss << ")";
  else if (grad_norm_.spikes(grad_norm, sigma_, window_)) why << "gradient-norm spike (" << grad_norm << ")";
  if (!why.str().empty()) {
    ++consecutive_bad_;
    return why.str();
  }
  consecutive_bad_ = 0;
  loss_.add(loss, window_), grad_norm_.add(grad_norm, window_);
  return "";
}

}  // namespace xlhost::core
