#include "causal_attention.hpp"

#include <ATen/Parallel.h>
#include <ATen/native/CPUBlas.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <vector>

#include "cpu_loops.hpp"

namespace xlhost::sdk {
namespace {

// C (m × n, row stride ldc) = A (m × k) · B (k × n), row-major, or C += A·B: ATen's
// batch-reduce GEMM (oneDNN's micro-kernels, BLAS where oneDNN has none), called per block
// from the threads of the parallel loops below, each block small enough for its cache.
void matmul(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb, float* c,
            int64_t ldc, bool accumulate) {
  at::native::cpublas::brgemm(m, n, k, lda, ldb, ldc, accumulate, a, b, c);
}

// dst (cols × rows) = srcᵀ, src rows × cols with row stride ld.
void transpose(const float* src, int64_t rows, int64_t cols, int64_t ld, float* dst) {
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) dst[j * rows + i] = src[i * ld + j];
}

// Queries per block: a block's scores (64 × up to T floats) stay in the core's cache while
// they are exponentiated and multiplied.
constexpr int64_t kQueryBlock = 64;

// e^x for x ≤ 0 (scores less their row maximum or log-sum-exp; below −87, e^−87 ≈ 1.6·10⁻³⁸):
// Cephes' polynomial, with the rounding and the power of two done in float and integer
// arithmetic so that the loops calling it vectorise. Relative error at most 8.3·10⁻⁸ (under
// one float ulp) over every float in [−87, 0], checked against double-precision exp.
inline float exp_nonpositive(float x) {
  constexpr float kRound = 12582912.0f;  // 1.5·2²³: adding it rounds to an integer in the low mantissa bits
  x = std::max(x, -87.0f);
  const float t = x * 1.44269504088896341f + kRound;
  const float n = t - kRound;
  const int32_t ni = std::bit_cast<int32_t>(t) - std::bit_cast<int32_t>(kRound);
  x = x - n * 0.693359375f + n * 2.12194440e-4f;
  float y = 1.9875691500e-4f;
  y = y * x + 1.3981999507e-3f;
  y = y * x + 8.3334519073e-3f;
  y = y * x + 4.1665795894e-2f;
  y = y * x + 1.6666665459e-1f;
  y = y * x + 5.0000001201e-1f;
  y = y * x * x + x + 1.0f;
  return y * std::bit_cast<float>((ni + 127) << 23);
}

// Row i of `rows` (query first + i) sees keys 0 … first + i: its raw scores
// q·kᵀ become p = softmax(scale·scores) over them, 0 after; lse[i] = log Σ exp(scale·scores).
// s: rows × ld.
XLHOST_CPU_VARIANTS void softmax_rows(float* s, int64_t ld, int64_t rows, int64_t first, float scale, float* lse) {
  for (int64_t i = 0; i < rows; ++i, s += ld) {
    const int64_t seen = first + i + 1;
    auto score = [s](int64_t j) { return s[j]; };
    const float max = scale * reduce_in_lanes(seen, -INFINITY, score, [](float a, float b) { return std::max(a, b); });
    for (int64_t j = 0; j < seen; ++j) s[j] = exp_nonpositive(scale * s[j] - max);
    const float sum = reduce_in_lanes(seen, 0.0f, score, [](float a, float b) { return a + b; });
    const float inv = 1.0f / sum;
    for (int64_t j = 0; j < seen; ++j) s[j] *= inv;
    std::fill(s + seen, s + ld, 0.0f);
    lse[i] = max + std::log(sum);
  }
}

// The backward's rows: p = exp(scale·scores − lse) recomputed in s, and in dp the gradient of
// the raw scores, scale·p ⊙ (dp − D) with D = ⟨dO, O⟩ of the row; both 0 after the row's last
// visible key.
XLHOST_CPU_VARIANTS void softmax_grad_rows(
    float* s, float* dp, int64_t ld, int64_t rows, int64_t first, float scale, const float* lse, const float* d_row) {
  for (int64_t i = 0; i < rows; ++i, s += ld, dp += ld) {
    const int64_t seen = first + i + 1;
    const float l = lse[i], dr = d_row[i];
    for (int64_t j = 0; j < seen; ++j) {
      const float p = exp_nonpositive(scale * s[j] - l);
      s[j] = p;
      dp[j] = scale * p * (dp[j] - dr);
    }
    std::fill(s + seen, s + ld, 0.0f);
    std::fill(dp + seen, dp + ld, 0.0f);
  }
}

// A [B, H, T, d] tensor whose rows are contiguous: element (b, h, t, 0) at
// data + b·batch + h·head + t·row.
struct Rows {
  explicit Rows(const torch::Tensor& t)
      : data(t.data_ptr<float>()), batch(t.stride(0)), head(t.stride(1)), row(t.stride(2)) {}
  float* at(int64_t b, int64_t h, int64_t t = 0) const { return data + b * batch + h * head + t * row; }
  float* data;
  int64_t batch, head, row;
};

// [B, H, T, d] with each time step's heads side by side ([B, T, H, d] in memory), the
// layout the output projection reads without a copy.
torch::Tensor heads_by_time(const torch::Tensor& like, int64_t heads) {
  return torch::empty({like.size(0), like.size(2), heads, like.size(3)}, like.options()).transpose(1, 2);
}

// t itself when its rows are contiguous and apart (a GEMM operand with a leading dimension),
// else a contiguous copy (a tensor expanded along time, or with its last two dimensions swapped).
torch::Tensor rows_contiguous(const torch::Tensor& t) {
  return t.stride(3) == 1 && t.stride(2) >= t.size(3) ? t : t.contiguous();
}

// [B, Hkv, d, T]: each head's keys (or values) as columns, the right operand of q·kᵀ.
torch::Tensor columns(const torch::Tensor& t) { return t.transpose(2, 3).contiguous(); }

// The GEMM keeps per-thread state (AMX tile configuration where it runs bf16 on AMX).
void release_matmul_state() { at::native::cpublas::brgemm_release(); }

struct Forward {
  torch::Tensor out, lse;
};

// One task per (sequence, query head, query block): it needs only its keys up to the block's end.
Forward forward_pass(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v) {
  const int64_t B = q.size(0), H = q.size(1), T = q.size(2), d = q.size(3), Hkv = k.size(1), rep = H / Hkv;
  const int64_t blocks = (T + kQueryBlock - 1) / kQueryBlock;
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  auto out = heads_by_time(q, H);
  auto lse = torch::empty({B, H, T}, q.options());
  auto kt = columns(k);
  const Rows Q(q), V(v), O(out), Kt(kt);
  float* L = lse.data_ptr<float>();
  at::parallel_for(0, B * H * blocks, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> s(kQueryBlock * T);
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = task / (H * blocks), h = task / blocks % H, g = h / rep;
      const int64_t first = task % blocks * kQueryBlock, n = std::min(kQueryBlock, T - first), kend = first + n;
      matmul(n, kend, d, Q.at(b, h, first), Q.row, Kt.at(b, g), T, s.data(), kend, false);  // q·kᵀ
      softmax_rows(s.data(), kend, n, first, scale, L + (b * H + h) * T + first);
      matmul(n, d, kend, s.data(), kend, V.at(b, g), V.row, O.at(b, h, first), O.row, false);  // p·v
    }
    release_matmul_state();
  });
  return {out, lse};
}

struct Gradients {
  torch::Tensor dq, dk, dv;
};

// Each task owns one key/value head of one sequence: its dk and dv sum over the query heads it
// serves and their query blocks, written by no other thread, so the sums do not depend on the
// thread count.
Gradients backward_pass(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                        const torch::Tensor& out, const torch::Tensor& lse, const torch::Tensor& grad_out) {
  const int64_t B = q.size(0), H = q.size(1), T = q.size(2), d = q.size(3), Hkv = k.size(1), rep = H / Hkv;
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  auto dq = heads_by_time(q, H), dk = heads_by_time(k, Hkv).zero_(), dv = heads_by_time(v, Hkv).zero_();
  auto d_rows = (grad_out * out).sum(-1).contiguous();  // D of each query row
  auto kt = columns(k), vt = columns(v);
  const Rows Q(q), K(k), Kt(kt), Vt(vt), dO(grad_out), dQ(dq), dK(dk), dV(dv);
  const float *L = lse.data_ptr<float>(), *D = d_rows.data_ptr<float>();
  at::parallel_for(0, B * Hkv, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> p(kQueryBlock * T), ds(kQueryBlock * T), transposed(kQueryBlock * T);
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = task / Hkv, g = task % Hkv;
      for (int64_t h = g * rep; h < (g + 1) * rep; ++h)
        for (int64_t first = 0; first < T; first += kQueryBlock) {
          const int64_t n = std::min(kQueryBlock, T - first), kend = first + n, row = (b * H + h) * T + first;
          matmul(n, kend, d, Q.at(b, h, first), Q.row, Kt.at(b, g), T, p.data(), kend, false);
          matmul(n, kend, d, dO.at(b, h, first), dO.row, Vt.at(b, g), T, ds.data(), kend, false);  // dp = dO·vᵀ
          softmax_grad_rows(p.data(), ds.data(), kend, n, first, scale, L + row, D + row);
          transpose(p.data(), n, kend, kend, transposed.data());  // dv += pᵀ·dO
          matmul(kend, d, n, transposed.data(), n, dO.at(b, h, first), dO.row, dV.at(b, g), dV.row, true);
          transpose(ds.data(), n, kend, kend, transposed.data());  // dk += dsᵀ·q
          matmul(kend, d, n, transposed.data(), n, Q.at(b, h, first), Q.row, dK.at(b, g), dK.row, true);
          matmul(n, d, kend, ds.data(), kend, K.at(b, g), K.row, dQ.at(b, h, first), dQ.row, false);  // dq = ds·k
        }
    }
    release_matmul_state();
  });
  return {dq, dk, dv};
}

struct CausalAttention : torch::autograd::Function<CausalAttention> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& q,
                               const torch::Tensor& k, const torch::Tensor& v) {
    auto qr = rows_contiguous(q), kr = rows_contiguous(k), vr = rows_contiguous(v);
    auto result = forward_pass(qr, kr, vr);
    ctx->save_for_backward({qr, kr, vr, result.out, result.lse});
    return result.out;
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto s = ctx->get_saved_variables();
    auto g = backward_pass(s[0], s[1], s[2], s[3], s[4], rows_contiguous(grads[0]));
    return {g.dq, g.dk, g.dv};
  }
};

}  // namespace

bool cpu_causal_attention_applies(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v) {
  auto fits = [&](const torch::Tensor& t) { return t.is_cpu() && t.scalar_type() == torch::kFloat32 && t.dim() == 4; };
  return fits(q) && fits(k) && fits(v) && q.size(2) == k.size(2) && q.size(1) % k.size(1) == 0;
}

torch::Tensor cpu_causal_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v) {
  return CausalAttention::apply(q, k, v);
}

}  // namespace xlhost::sdk
