// x·wᵀ for the SDK's layers (F::linear without bias). On the CPU in float32, outside autocast,
// the products run on oneDNN instead of MKL: the wheel's MKL runs its AVX2 kernels on AMD
// CPUs, oneDNN picks the widest ISA it finds (on a 2-core AMD EPYC Zen 5, 2 threads: 457–466
// GFLOP/s against 205–213 at the quickstart's shapes), where oneDNN has AVX-512 (its product
// refuses float32 without it). Elsewhere, F::linear.
#pragma once

#include <torch/torch.h>

namespace xlhost::sdk {

// x [..., in], w [out, in] -> [..., out].
torch::Tensor project(const torch::Tensor& x, const torch::Tensor& w);

}  // namespace xlhost::sdk
