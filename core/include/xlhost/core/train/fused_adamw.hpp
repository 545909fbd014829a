// AdamW whose update is ATen's fused kernel (_fused_adamw_: one vectorised pass per
// parameter on the CPU, one kernel launch per group on CUDA) instead of LibTorch's
// torch::optim::AdamW, which runs about ten separate tensor operations per parameter.
// Same options, param groups and state (AdamWParamState), so checkpoints written by
// either load into the other; the arithmetic is the same up to rounding.
#pragma once

#include <torch/torch.h>

#include <vector>

namespace xlhost::core {

class FusedAdamW : public torch::optim::AdamW {
 public:
  using torch::optim::AdamW::AdamW;
  torch::Tensor step(LossClosure closure = nullptr) override;
};

}  // namespace xlhost::core
