// The CPU attention kernel's forward and its autograd function (the backward: attention_backward.cpp).
#include "attention_kernel.hpp"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "attention_blocks.hpp"
#include "cpu_loops.hpp"

namespace xlhost::sdk {
namespace attention_blocks {

// Eight floats, for an 8 × 8 transpose written once for every target the loops are built for.
typedef float Float8 __attribute__((vector_size(32)));

// dst (cols × rows, row stride ldd) = srcᵀ, src rows × cols with row stride lds: in 8 × 8 tiles
// transposed in registers (three rounds of shuffles), the edges element by element.
XLHOST_CPU_VARIANTS void transpose(const float* src, int64_t rows, int64_t cols, int64_t lds, float* dst, int64_t ldd) {
  const int64_t rows8 = rows / 8 * 8, cols8 = cols / 8 * 8;
  for (int64_t i = 0; i < rows8; i += 8)
    for (int64_t j = 0; j < cols8; j += 8) {
      Float8 r[8], t[8], u[8];
      for (int k = 0; k < 8; ++k) std::memcpy(&r[k], src + (i + k) * lds + j, sizeof r[k]);
      for (int k = 0; k < 8; k += 2) {
        t[k] = __builtin_shufflevector(r[k], r[k + 1], 0, 8, 1, 9, 4, 12, 5, 13);
        t[k + 1] = __builtin_shufflevector(r[k], r[k + 1], 2, 10, 3, 11, 6, 14, 7, 15);
      }
      for (int k = 0; k < 8; k += 4)
        for (int m = 0; m < 2; ++m) {
          u[k + 2 * m] = __builtin_shufflevector(t[k + m], t[k + m + 2], 0, 1, 8, 9, 4, 5, 12, 13);
          u[k + 2 * m + 1] = __builtin_shufflevector(t[k + m], t[k + m + 2], 2, 3, 10, 11, 6, 7, 14, 15);
        }
      for (int k = 0; k < 4; ++k) {  // u[k] holds columns k and k + 4 of rows i … i+3, u[k + 4] of rows i+4 … i+7
        const Float8 low = __builtin_shufflevector(u[k], u[k + 4], 0, 1, 2, 3, 8, 9, 10, 11);
        const Float8 high = __builtin_shufflevector(u[k], u[k + 4], 4, 5, 6, 7, 12, 13, 14, 15);
        std::memcpy(dst + (j + k) * ldd + i, &low, sizeof low);
        std::memcpy(dst + (j + k + 4) * ldd + i, &high, sizeof high);
      }
    }
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = i < rows8 ? cols8 : 0; j < cols; ++j) dst[j * ldd + i] = src[i * lds + j];
}

}  // namespace attention_blocks

namespace {

using namespace attention_blocks;

// out (n × block width) = a·xᵀ, each part of the block's rows over the keys it sees (the
// softmax sets the rest of a row to 0): a is n × d (row stride lda), xt a head's keys or
// values transposed, d × S.
void times_keys(const QueryBlock& block, int64_t d, const float* a, int64_t lda, const float* xt, int64_t S,
                float* out) {
  const int64_t w = block.keys.width;
  for (size_t j = 0; j < block.parts.size(); ++j) {
    const int64_t row = static_cast<int64_t>(j) * kPartRows;
    for (size_t i = 0; i < block.keys.ranges.size(); ++i) {
      const auto& r = block.keys.ranges[i];
      const int64_t columns = block.parts[j].ranges[i].columns;
      if (columns > 0)
        matmul(block.rows_of(j), columns, d, a + row * lda, lda, xt + r.keys.start, S, out + row * w + r.offset, w,
               false);
    }
  }
}

// out (n × d, row stride ldo) = s·x, s a block's scores (n × block width) and x (S × d, row
// stride ldx) a head's keys or values: each part over the keys it sees (zeros after them).
void times_rows(const QueryBlock& block, int64_t d, const float* s, const float* x, int64_t ldx, float* out,
                int64_t ldo) {
  const int64_t w = block.keys.width;
  for (size_t j = 0; j < block.parts.size(); ++j) {
    const int64_t row = static_cast<int64_t>(j) * kPartRows;
    bool accumulate = false;
    for (size_t i = 0; i < block.keys.ranges.size(); ++i) {
      const auto& r = block.keys.ranges[i];
      const int64_t columns = block.parts[j].ranges[i].columns;
      if (columns == 0) continue;
      matmul(block.rows_of(j), d, columns, s + row * w + r.offset, w, x + r.keys.start * ldx, ldx, out + row * ldo, ldo,
             accumulate);
      accumulate = true;
    }
  }
}

// Row t of a block's raw scores q·kᵀ (width columns): softmax(scale·scores) over the keys
// query t sees, times factor (dropout; null: none), 0 at the keys it does not see. Returns the
// log-sum-exp, log Σ exp(scale·scores).
XLHOST_CPU_VARIANTS float softmax_row(float* s, const BlockKeys& block, int64_t t, float scale, const float* factor) {
  float max = -INFINITY, sum = 0.0f;
  for (const auto& r : block.ranges)
    max = std::max(max, max_of(s + r.offset, r.seen_by(t)));
  max *= scale;
  for (const auto& r : block.ranges) {
    float* x = s + r.offset;
    for (int64_t j = 0, padded = r.padded_by(t); j < padded; ++j) x[j] = exp_nonpositive(scale * x[j] - max);
    sum += sum_of(x, r.seen_by(t));
  }
  const float inv = 1.0f / sum;
  for (const auto& r : block.ranges) {
    float* x = s + r.offset;
    const int64_t padded = r.padded_by(t);
    if (factor != nullptr) {
      const float* f = factor + r.offset;
      for (int64_t j = 0; j < padded; ++j) x[j] *= inv * f[j];
    } else {
      for (int64_t j = 0; j < padded; ++j) x[j] *= inv;
    }
    std::fill(x + r.seen_by(t), x + r.columns, 0.0f);
  }
  return max + std::log(sum);
}

// t itself when its rows are contiguous and apart (a GEMM operand with a leading dimension),
// else a contiguous copy (a tensor expanded along time, or with its last two dimensions swapped).
torch::Tensor rows_contiguous(const torch::Tensor& t) {
  return t.stride(3) == 1 && t.stride(2) >= t.size(3) ? t : t.contiguous();
}

// Query t, row `row` of the [B·H·T, S] weights: the dropout factors of the keys it sees
// (padded), at their columns in `block`; null without dropout.
const float* row_factors(const Dropout& dropout, const BlockKeys& block, int64_t row, int64_t t, int64_t S,
                         float* out) {
  if (dropout.p == 0) return nullptr;
  for (const auto& r : block.ranges)
    dropout.mask.factors(static_cast<uint64_t>(row * S + r.keys.start), r.padded_by(t), out + r.offset);
  return out;
}

struct Forward {
  torch::Tensor out, lse;
};

// One task per (sequence, key/value head): it transposes that head's keys once, for every query
// head and query block it serves; each block multiplies only the keys it sees.
Forward forward_pass(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, const Visibility& seen,
                     const Dropout& dropout) {
  const int64_t B = q.size(0), H = q.size(1), T = q.size(2), d = q.size(3), S = k.size(2), Hkv = k.size(1);
  const int64_t rep = H / Hkv;
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  auto out = heads_by_time(q, H);
  auto lse = torch::empty({B, H, T}, q.options());
  const Rows Q(q), K(k), V(v), O(out);
  float* L = lse.data_ptr<float>();
  const auto blocks = query_blocks(seen, T);
  at::parallel_for(0, B * Hkv, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> kt(d * S), s(kQueryBlock * S), factors(S);
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = task / Hkv, g = task % Hkv;
      transpose(K.at(b, g), S, d, K.row, kt.data(), S);  // kᵀ, d × S: the right operand of q·kᵀ
      for (int64_t h = g * rep; h < (g + 1) * rep; ++h)
        for (const auto& block : blocks) {
          const int64_t first = block.first, w = block.keys.width;
          times_keys(block, d, Q.at(b, h, first), Q.row, kt.data(), S, s.data());  // q·kᵀ
          for (int64_t i = 0; i < block.n; ++i) {
            const int64_t row = (b * H + h) * T + first + i;
            const float* factor = row_factors(dropout, block.keys, row, first + i, S, factors.data());
            L[row] = softmax_row(s.data() + i * w, block.keys, first + i, scale, factor);
          }
          times_rows(block, d, s.data(), V.at(b, g), V.row, O.at(b, h, first), O.row);  // p·v
        }
    }
    release_matmul_state();
  });
  return {out, lse};
}

// The ranges as four integers each, for the autograd context.
std::vector<int64_t> flatten(const Visibility& seen) {
  std::vector<int64_t> flat;
  for (const auto& r : seen) flat.insert(flat.end(), {r.start, r.length, r.first, r.step});
  return flat;
}

Visibility unflatten(const std::vector<int64_t>& flat) {
  Visibility seen;
  for (size_t i = 0; i + 3 < flat.size(); i += 4) seen.push_back({flat[i], flat[i + 1], flat[i + 2], flat[i + 3]});
  return seen;
}

struct Attention : torch::autograd::Function<Attention> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& q, const torch::Tensor& k,
                               const torch::Tensor& v, const Visibility& seen, double p) {
    const Dropout dropout(p, p > 0 ? draw_dropout_key() : 0);
    auto qr = rows_contiguous(q), kr = rows_contiguous(k), vr = rows_contiguous(v);
    auto result = forward_pass(qr, kr, vr, seen, dropout);
    ctx->save_for_backward({qr, kr, vr, result.out, result.lse});
    ctx->saved_data["seen"] = flatten(seen);
    ctx->saved_data["p"] = p;
    ctx->saved_data["key"] = static_cast<int64_t>(dropout.mask.key);
    return result.out;
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto s = ctx->get_saved_variables();
    const Dropout dropout(ctx->saved_data["p"].toDouble(), static_cast<uint64_t>(ctx->saved_data["key"].toInt()));
    auto g = backward_pass(s[0], s[1], s[2], s[3], s[4], rows_contiguous(grads[0]),
                           unflatten(ctx->saved_data["seen"].toIntVector()), dropout);
    return {g.dq, g.dk, g.dv, torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

bool cpu_attention_applies(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v) {
  auto fits = [&](const torch::Tensor& t) {
    const auto type = t.scalar_type();
    return t.is_cpu() && t.dim() == 4 && (type == torch::kFloat32 || type == torch::kBFloat16 || type == torch::kHalf);
  };
  if (!(fits(q) && fits(k) && fits(v) && q.size(1) % k.size(1) == 0 && k.size(2) == v.size(2))) return false;
  const int64_t working_set = (4 * k.size(3) + 2 * kQueryBlock) * k.size(2) * static_cast<int64_t>(sizeof(float));
  auto float32 = [](const torch::Tensor& t) { return t.scalar_type() == torch::kFloat32; };
  return (float32(q) && float32(k) && float32(v)) || working_set <= (int64_t{4} << 20);
}

torch::Tensor cpu_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                            const Visibility& seen, double p) {
  auto wide = [](const torch::Tensor& t) { return t.to(torch::kFloat32); };  // float32: t itself
  return Attention::apply(wide(q), wide(k), wide(v), seen, p).to(q.scalar_type());
}

}  // namespace xlhost::sdk
