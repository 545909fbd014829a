#include "xlhost/sdk/attention.hpp"

#include <cmath>
#include <optional>
#include <stdexcept>
#include <string>

#include "attention_kernel.hpp"
#include "xlhost/sdk/dropout.hpp"

namespace xlhost::sdk {
namespace {

void check(const Visibility& seen, int64_t keys) {
  int64_t end = 0, first_query_sees = 0;
  for (const auto& r : seen) {
    if (r.start < end || r.length < 0 || r.start + r.length > keys || r.first < 0 || r.step < 0)
      throw std::invalid_argument("attention: key range start " + std::to_string(r.start) + " length " +
                                  std::to_string(r.length) + " first " + std::to_string(r.first) + " step " +
                                  std::to_string(r.step) + " is not within " + std::to_string(keys) +
                                  " keys after the previous range, with first and step ≥ 0");
    end = r.start + r.length;
    first_query_sees += r.seen_by(0);
  }
  if (first_query_sees == 0) throw std::invalid_argument("attention: the first query sees no key");
}

bool sees_every_key(const Visibility& seen, int64_t keys) {
  int64_t n = 0;
  for (const auto& r : seen) n += r.seen_by(0);
  return n == keys;
}

// [T, S] bool: true where query t sees key j.
torch::Tensor visible_mask(const Visibility& seen, int64_t T, int64_t S, const torch::Device& device) {
  const auto options = torch::TensorOptions().dtype(torch::kInt64).device(device);
  auto visible = torch::zeros({T, S}, options.dtype(torch::kBool));
  auto query = torch::arange(T, options).unsqueeze(1);
  for (const auto& r : seen) {
    auto key = torch::arange(r.length, options).unsqueeze(0);
    visible.narrow(1, r.start, r.length).copy_(key < r.first + (query + 1) * r.step);
  }
  return visible;
}

// ATen: SDPA (its causal flag where the ranges say causal self-attention, so that CUDA keeps
// its flash kernels), or, for dropout on the CPU, SDPA's math path with the SDK's dropout
// (SDPA's CPU kernels drop with ATen's serial dropout).
torch::Tensor aten_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                             const Visibility& seen, double p, bool training) {
  const int64_t T = q.size(2), S = k.size(2), rep = q.size(1) / k.size(1);
  const bool gqa = rep != 1;
  const bool causal = seen.size() == 1 && T == S && seen[0].first == 0 && seen[0].step == 1 && seen[0].length == S;
  std::optional<torch::Tensor> visible;
  if (!causal && !sees_every_key(seen, S)) visible = visible_mask(seen, T, S, q.device());
  if (p == 0 || !q.is_cpu()) return at::scaled_dot_product_attention(q, k, v, visible, p, causal, {}, gqa);
  auto scores = torch::matmul(q / std::sqrt(static_cast<double>(q.size(3))),  // the scale on q, T·d not T·S
                              (gqa ? k.repeat_interleave(rep, 1) : k).transpose(-2, -1));
  {
    // Hidden keys are set in place and outside autograd: softmax's gradient is zero there
    // already, so a masked_fill node would only add a pass over [B, H, T, S] to the backward.
    torch::NoGradGuard no_grad;
    if (causal) visible = visible_mask(seen, T, S, q.device());
    if (visible) scores.masked_fill_(visible->logical_not(), -INFINITY);
  }
  auto weights = torch::softmax(scores, -1, torch::kFloat32).to(q.scalar_type());
  return torch::matmul(apply_dropout(weights, p, training), gqa ? v.repeat_interleave(rep, 1) : v);
}

}  // namespace

torch::Tensor attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, const Visibility& seen,
                        double p, bool training) {
  check(seen, k.size(2));
  if (!(p >= 0 && p < 1)) throw std::invalid_argument("attention: dropout " + std::to_string(p) + " is not in [0, 1)");
  if (!training) p = 0;
  if (cpu_attention_applies(q, k, v)) return cpu_attention(q, k, v, seen, p);
  // ATen's products take one dtype: the widest of the three (the kernel computes in float32).
  const auto type = c10::promoteTypes(q.scalar_type(), c10::promoteTypes(k.scalar_type(), v.scalar_type()));
  return aten_attention(q.to(type), k.to(type), v.to(type), seen, p, training);
}

}  // namespace xlhost::sdk
