#include "xlhost/sdk/fused_ops.hpp"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "cpu_loops.hpp"

namespace xlhost::sdk {
namespace {

// y = w ⊙ x·r with r = 1/sqrt(mean(x²) + eps), for `rows` rows of n; r is kept for the backward.
XLHOST_CPU_VARIANTS void norm_rows(const float* __restrict x, const float* __restrict w, float* __restrict y,
                                   float* __restrict r, int64_t rows, int64_t n, float eps) {
  for (int64_t i = 0; i < rows; ++i, x += n, y += n) {
    const float ri = 1.0f / std::sqrt(dot(x, x, n) / static_cast<float>(n) + eps);
    for (int64_t j = 0; j < n; ++j) y[j] = w[j] * (x[j] * ri);
    r[i] = ri;
  }
}

// With g = ∂L/∂y: ∂L/∂x = r·(g⊙w − x·r²·⟨g⊙w, x⟩/n), and ∂L/∂w += g ⊙ x·r summed into wsum;
// gw (n floats) holds g⊙w of the current row.
XLHOST_CPU_VARIANTS void norm_grad_rows(
    const float* __restrict g, const float* __restrict x, const float* __restrict w, const float* __restrict r,
    float* __restrict gx, float* __restrict wsum, float* __restrict gw, int64_t rows, int64_t n) {
  for (int64_t i = 0; i < rows; ++i, g += n, x += n, gx += n) {
    const float ri = r[i];
    for (int64_t j = 0; j < n; ++j) gw[j] = g[j] * w[j];
    const float c = ri * ri * dot(gw, x, n) / static_cast<float>(n);
    for (int64_t j = 0; j < n; ++j) {
      gx[j] = ri * (gw[j] - x[j] * c);
      wsum[j] += g[j] * (x[j] * ri);
    }
  }
}

// Pairs (x[2i], x[2i+1]) of each of `heads` rows of d rotated by (c[i], sign·s[i]).
XLHOST_CPU_VARIANTS void rotate_rows(const float* __restrict x, const float* __restrict c, const float* __restrict s,
                                     float* __restrict y, int64_t heads, int64_t d, float sign) {
  for (int64_t h = 0; h < heads; ++h, x += d, y += d)
    for (int64_t i = 0; i < d / 2; ++i) {
      const float x0 = x[2 * i], x1 = x[2 * i + 1], si = sign * s[i];
      y[2 * i] = x0 * c[i] - x1 * si;
      y[2 * i + 1] = x0 * si + x1 * c[i];
    }
}

// σ(a) = 1/(1 + e^−a), from e^−|a| so that the exponential never overflows.
inline float sigmoid(float a) {
  const float e = exp_nonpositive(-std::abs(a));
  return (a >= 0.0f ? 1.0f : e) / (1.0f + e);
}

// y = silu(a) ⊙ b for `rows` rows of [a | b] (2h floats in, h out).
XLHOST_CPU_VARIANTS void gate_rows(const float* __restrict ab, float* __restrict y, int64_t rows, int64_t h) {
  for (int64_t i = 0; i < rows; ++i, ab += 2 * h, y += h)
    for (int64_t j = 0; j < h; ++j) {
      const float a = ab[j];
      y[j] = a * sigmoid(a) * ab[h + j];
    }
}

// With g = ∂L/∂y: ∂L/∂a = g·b·σ(a)(1 + a(1 − σ(a))), ∂L/∂b = g·silu(a), into [∂a | ∂b].
XLHOST_CPU_VARIANTS void gate_grad_rows(const float* __restrict g, const float* __restrict ab, float* __restrict gab,
                                        int64_t rows, int64_t h) {
  for (int64_t i = 0; i < rows; ++i, g += h, ab += 2 * h, gab += 2 * h)
    for (int64_t j = 0; j < h; ++j) {
      const float a = ab[j], b = ab[h + j], s = sigmoid(a);
      gab[j] = g[j] * b * s * (1.0f + a * (1.0f - s));
      gab[h + j] = g[j] * a * s;
    }
}

bool fused_type(const torch::Tensor& t) {
  return t.scalar_type() == torch::kFloat32 || t.scalar_type() == torch::kBFloat16 ||
         t.scalar_type() == torch::kHalf;
}

torch::Tensor as_float(const torch::Tensor& t) { return t.to(torch::kFloat32).contiguous(); }

// The weight's gradient sums over rows in blocks of a fixed size, then over the blocks in
// order: the same sum whichever thread takes which block.
constexpr int64_t kRowBlock = 32;

struct RMSNormFunction : torch::autograd::Function<RMSNormFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& weight, double eps) {
    auto xf = as_float(x), wf = as_float(weight);
    const int64_t n = x.size(-1), rows = xf.numel() / n;
    auto y = torch::empty_like(xf);
    auto r = torch::empty({rows}, xf.options());
    const float *px = xf.const_data_ptr<float>(), *pw = wf.const_data_ptr<float>();
    float *py = y.mutable_data_ptr<float>(), *pr = r.mutable_data_ptr<float>();
    at::parallel_for(0, rows, kRowBlock, [&](int64_t begin, int64_t end) {
      norm_rows(px + begin * n, pw, py + begin * n, pr + begin, end - begin, n, static_cast<float>(eps));
    });
    ctx->save_for_backward({x, weight, r});
    return y.to(torch::promote_types(x.scalar_type(), weight.scalar_type()));
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &x = saved[0], &weight = saved[1], &r = saved[2];
    auto gf = as_float(grads[0]), xf = as_float(x), wf = as_float(weight);
    const int64_t n = x.size(-1), rows = xf.numel() / n, blocks = (rows + kRowBlock - 1) / kRowBlock;
    auto gx = torch::empty_like(xf);
    auto partial = torch::zeros({blocks, n}, xf.options());
    const float *pg = gf.const_data_ptr<float>(), *px = xf.const_data_ptr<float>(),
                *pw = wf.const_data_ptr<float>(), *pr = r.const_data_ptr<float>();
    float *pgx = gx.mutable_data_ptr<float>(), *pp = partial.mutable_data_ptr<float>();
    at::parallel_for(0, blocks, 1, [&](int64_t begin, int64_t end) {
      std::vector<float> gw(n);
      for (int64_t b = begin; b < end; ++b) {
        const int64_t first = b * kRowBlock, count = std::min(kRowBlock, rows - first);
        norm_grad_rows(pg + first * n, px + first * n, pw, pr + first, pgx + first * n, pp + b * n, gw.data(),
                       count, n);
      }
    });
    return {gx.to(x.scalar_type()), partial.sum(0).to(weight.scalar_type()), torch::Tensor()};
  }
};

torch::Tensor rotate(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin, float sign) {
  auto xf = as_float(x);
  auto y = torch::empty_like(xf);
  const int64_t T = x.size(1), heads = x.size(2), d = x.size(3), rows = x.size(0) * T;
  const float *px = xf.const_data_ptr<float>(), *pc = cos.const_data_ptr<float>(), *ps = sin.const_data_ptr<float>();
  float* py = y.mutable_data_ptr<float>();
  at::parallel_for(0, rows, 16, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const int64_t t = row % T;
      rotate_rows(px + row * heads * d, pc + t * d / 2, ps + t * d / 2, py + row * heads * d, heads, d, sign);
    }
  });
  return y.to(x.scalar_type());
}

// A rotation's adjoint is the rotation by the opposite angle.
struct RotateFunction : torch::autograd::Function<RotateFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& cos, const torch::Tensor& sin) {
    ctx->save_for_backward({cos, sin});
    return rotate(x, cos, sin, 1.0f);
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    return {rotate(grads[0], saved[0], saved[1], -1.0f), torch::Tensor(), torch::Tensor()};
  }
};

struct GateFunction : torch::autograd::Function<GateFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& gate_up) {
    auto abf = as_float(gate_up);
    const int64_t h = gate_up.size(-1) / 2, rows = abf.numel() / (2 * h);
    auto sizes = gate_up.sizes().vec();
    sizes.back() = h;
    auto y = torch::empty(sizes, abf.options());
    const float* pab = abf.const_data_ptr<float>();
    float* py = y.mutable_data_ptr<float>();
    at::parallel_for(0, rows, 16, [&](int64_t begin, int64_t end) {
      gate_rows(pab + begin * 2 * h, py + begin * h, end - begin, h);
    });
    ctx->save_for_backward({gate_up});
    return y.to(gate_up.scalar_type());
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto gate_up = ctx->get_saved_variables()[0];
    auto abf = as_float(gate_up), gf = as_float(grads[0]);
    const int64_t h = gate_up.size(-1) / 2, rows = abf.numel() / (2 * h);
    auto gab = torch::empty_like(abf);
    const float *pg = gf.const_data_ptr<float>(), *pab = abf.const_data_ptr<float>();
    float* pgab = gab.mutable_data_ptr<float>();
    at::parallel_for(0, rows, 16, [&](int64_t begin, int64_t end) {
      gate_grad_rows(pg + begin * h, pab + begin * 2 * h, pgab + begin * 2 * h, end - begin, h);
    });
    return {gab.to(gate_up.scalar_type())};
  }
};

// The shapes of one append_rows call: B sequences of T own rows then N reads, rows of D.
struct AppendShape {
  int64_t B, T, N, D;
  int64_t out_row(int64_t s, int64_t j) const { return (s * (T + N) + j) * D; }  // row j of sequence s
};

// Each loop below multiplies, stores, then adds in a second loop, so that the compiler cannot
// contract the two into one fused multiply-add: the composition rounds the product, then the sum.

// Rows [first, last) of the output: own rows plus bias, reads' rows times their weight plus bias.
XLHOST_CPU_VARIANTS void append_rows_forward(const AppendShape& a, const float* __restrict own,
                                             const float* __restrict rows, const int64_t* __restrict index,
                                             const float* __restrict weights, const float* __restrict bias,
                                             float* __restrict out, int64_t first, int64_t last) {
  for (int64_t i = first; i < last; ++i) {
    const int64_t s = i / (a.T + a.N), j = i % (a.T + a.N);
    float* y = out + i * a.D;
    const float* x = j < a.T ? own + (s * a.T + j) * a.D : rows + index[s * a.N + j - a.T] * a.D;
    const float w = j < a.T || weights == nullptr ? 1.0f : weights[s * a.N + j - a.T];
    for (int64_t c = 0; c < a.D; ++c) y[c] = x[c] * w;
    for (int64_t c = 0; c < a.D; ++c) y[c] += bias[c];
  }
}

// Columns [c0, c1) of the gradients, in one pass over the output's gradient: the bias's (every
// row's gradient summed in order); the rows' (every read's gradient times its weight, added to
// its row in read order); and each read's product with its row summed over these columns into
// dots (null: unweighted, no weight gradient). `scaled` holds c1 − c0 floats.
XLHOST_CPU_VARIANTS void append_rows_grads(const AppendShape& a, const float* __restrict grad,
                                           const float* __restrict rows, const int64_t* __restrict index,
                                           const float* __restrict weights, float* __restrict grad_rows,
                                           float* __restrict grad_bias, float* __restrict dots,
                                           float* __restrict scaled, int64_t c0, int64_t c1) {
  const int64_t n = c1 - c0;
  std::fill(grad_bias + c0, grad_bias + c1, 0.0f);
  for (int64_t s = 0; s < a.B; ++s)
    for (int64_t j = 0; j < a.T + a.N; ++j) {
      const float* g = grad + a.out_row(s, j) + c0;
      add_to(grad_bias + c0, g, n);
      if (j < a.T) continue;
      const int64_t r = s * a.N + j - a.T;
      const float w = weights == nullptr ? 1.0f : weights[r];
      float* dst = grad_rows + index[r] * a.D + c0;
      for (int64_t c = 0; c < n; ++c) scaled[c] = g[c] * w;
      add_to(dst, scaled, n);
      if (dots != nullptr) dots[r] = dot(g, rows + index[r] * a.D + c0, n);
    }
}

// Columns the backward gives each task: a fixed split, so that a weight's gradient (the sum of
// its columns' partial sums, in column order) does not depend on the thread count.
constexpr int64_t kGradColumns = 64;

struct AppendRowsFunction : torch::autograd::Function<AppendRowsFunction> {
  // own, rows and bias float32; index [B, N]; weights float32 [B, N] or empty (none: autograd
  // takes no undefined inputs).
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& own,
                               const torch::Tensor& rows, const torch::Tensor& index, const torch::Tensor& weights,
                               const torch::Tensor& bias) {
    const AppendShape a{own.size(0), own.size(1), index.size(1), own.size(2)};
    const int64_t U = rows.size(0);
    auto o = own.contiguous(), r = rows.contiguous(), idx = index.contiguous(), w = weights.contiguous(),
         b = bias.contiguous();
    const int64_t* pi = idx.const_data_ptr<int64_t>();
    for (int64_t n = 0; n < a.B * a.N; ++n)
      TORCH_CHECK(pi[n] >= 0 && pi[n] < U, "append_rows: index ", pi[n], " is not a row of ", U);
    auto out = torch::empty({a.B, a.T + a.N, a.D}, own.options());
    at::parallel_for(0, a.B * (a.T + a.N), 16, [&](int64_t first, int64_t last) {
      append_rows_forward(a, o.const_data_ptr<float>(), r.const_data_ptr<float>(), pi,
                          w.numel() > 0 ? w.const_data_ptr<float>() : nullptr, b.const_data_ptr<float>(),
                          out.mutable_data_ptr<float>(), first, last);
    });
    ctx->save_for_backward({r, idx, w, b});
    ctx->saved_data["T"] = a.T;
    return out;
  }

  // One pass over the output's gradient (it and the read's products were three passes and a
  // [B, N, D] copy, each over 5 MiB a layer at the quickstart memory model's shape: the passes
  // cost their memory traffic). Own rows' gradient: the first T rows, a view.
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &r = saved[0], &idx = saved[1], &w = saved[2], &bias = saved[3];
    auto g = grads[0].contiguous();
    const AppendShape a{g.size(0), ctx->saved_data["T"].toInt(), idx.size(1), g.size(2)};
    const bool weighted = w.numel() > 0;
    const int64_t chunks = (a.D + kGradColumns - 1) / kGradColumns;
    auto grad_rows = torch::zeros_like(r), grad_bias = torch::empty({a.D}, g.options());
    auto dots = torch::empty({weighted ? chunks : 0, a.B * a.N}, g.options());
    at::parallel_for(0, chunks, 1, [&](int64_t first, int64_t last) {
      std::vector<float> scaled(kGradColumns);
      for (int64_t chunk = first; chunk < last; ++chunk)
        append_rows_grads(a, g.const_data_ptr<float>(), r.const_data_ptr<float>(), idx.const_data_ptr<int64_t>(),
                          weighted ? w.const_data_ptr<float>() : nullptr, grad_rows.mutable_data_ptr<float>(),
                          grad_bias.mutable_data_ptr<float>(),
                          weighted ? dots.mutable_data_ptr<float>() + chunk * a.B * a.N : nullptr, scaled.data(),
                          chunk * kGradColumns, std::min(a.D, (chunk + 1) * kGradColumns));
    });
    torch::Tensor grad_weights;
    if (weighted) {
      grad_weights = dots[0].clone();
      for (int64_t chunk = 1; chunk < chunks; ++chunk) grad_weights += dots[chunk];
      grad_weights = grad_weights.view({a.B, a.N});
    }
    return {g.narrow(1, 0, a.T), grad_rows, torch::Tensor(), grad_weights, grad_bias.view(bias.sizes())};
  }
};

}  // namespace

torch::Tensor append_rows(const torch::Tensor& own, const torch::Tensor& rows, const torch::Tensor& index,
                          const torch::Tensor& weights, const torch::Tensor& bias) {
  TORCH_CHECK(own.dim() == 3 && rows.dim() == 2 && index.dim() == 2 && rows.size(1) == own.size(2) &&
                  index.size(0) == own.size(0) && bias.numel() == own.size(2) &&
                  (!weights.defined() || weights.sizes() == index.sizes()),
              "append_rows: own [B, T, D], rows [U, D], index [B, N], weights [B, N] and bias [D] expected; got ",
              own.sizes(), ", ", rows.sizes(), ", ", index.sizes(), ", ",
              weights.defined() ? weights.sizes() : c10::IntArrayRef{}, " and ", bias.sizes());
  const auto f32 = [](const torch::Tensor& t) {
    return !t.defined() || (t.is_cpu() && t.scalar_type() == torch::kFloat32);
  };
  if (f32(own) && f32(rows) && f32(weights) && f32(bias) && index.is_cpu() && index.scalar_type() == torch::kInt64)
    return AppendRowsFunction::apply(own, rows, index, weights.defined() ? weights : torch::empty({0}), bias);
  const int64_t B = index.size(0), N = index.size(1);
  auto read = rows.index_select(0, index.reshape({-1})).view({B, N, rows.size(1)});
  if (weights.defined()) read = read * weights.reshape({B, N, 1}).to(read.scalar_type());
  // The bias in the projections' dtype (bfloat16 under autocast), as F::linear would add it.
  return torch::cat({own, read}, 1) + bias.to(read.scalar_type());
}

torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps) {
  if (x.is_cpu() && weight.is_cpu() && fused_type(x) && fused_type(weight))
    return RMSNormFunction::apply(x, weight, eps);
  auto xf = x.to(torch::kFloat32);
  auto normed = xf * torch::rsqrt(xf.pow(2).mean(-1, /*keepdim=*/true) + eps);
  return normed.to(x.scalar_type()) * weight;
}

torch::Tensor rotate_pairs(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
  if (x.is_cpu() && fused_type(x)) return RotateFunction::apply(x, cos.contiguous(), sin.contiguous());
  auto pairs = x.to(torch::kFloat32).unflatten(-1, {-1, 2});
  auto x0 = pairs.select(-1, 0), x1 = pairs.select(-1, 1);
  auto c = cos.view({1, x.size(1), 1, -1}), s = sin.view({1, x.size(1), 1, -1});
  return torch::stack({x0 * c - x1 * s, x0 * s + x1 * c}, -1).flatten(-2).to(x.scalar_type());
}

torch::Tensor silu_gate(const torch::Tensor& gate_up) {
  if (gate_up.is_cpu() && fused_type(gate_up)) return GateFunction::apply(gate_up);
  auto halves = gate_up.chunk(2, -1);
  return torch::silu(halves[0]) * halves[1];
}

}  // namespace xlhost::sdk
