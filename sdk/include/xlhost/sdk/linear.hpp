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

// Whether ATen's oneDNN runs bfloat16 matrix products on this CPU: AVX-512 (F, BW, VL, DQ),
// AVX-NE-CONVERT or AMX, within ONEDNN_MAX_CPU_ISA. Where it does not, ATen's bfloat16 products
// fall back to a kernel at about a tenth of float32's rate (README), and project() is F::linear.
bool onednn_runs_bfloat16();

}  // namespace xlhost::sdk
