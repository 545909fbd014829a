// Which trainable parameters receive a gradient during a run's first steps. A parameter
// that never does is counted as trainable yet never learns (a top-k gate whose scores are
// not used, a key table behind an argmax): the trainer says so once, by name, like the
// causality warning, and the record keeps the count.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace xlhost::core {

class GradientWatch {
 public:
  static constexpr int64_t kSteps = 3;  // enough for parameters reached on alternate steps

  explicit GradientWatch(const torch::OrderedDict<std::string, torch::Tensor>& named_parameters);
  // After a step's backward, before the gradients are cleared. No-op once done().
  void observe();
  bool done() const { return observed_ >= kSteps; }
  bool observed_any() const { return observed_ > 0; }
  std::vector<std::string> dead() const;        // names that never received a non-zero gradient
  int64_t values_receiving_gradient() const;    // elements of the parameters that did
  // "N of M trainable parameter tensors (V values) received no gradient in the first S steps: a, b, ..."
  std::string warning() const;

 private:
  std::vector<std::pair<std::string, torch::Tensor>> watched_;
  std::vector<bool> received_;
  int64_t observed_ = 0;
};

}  // namespace xlhost::core
