#include "memory_kernels.hpp"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "cpu_loops.hpp"

namespace xlhost::sdk {
namespace {

// Rows a task takes: about ATen's parallel grain (32,768 elements) of work.
int64_t grain(int64_t work_per_row) { return std::max<int64_t>(1, 32768 / std::max<int64_t>(1, work_per_row)); }

// topk's order: larger first, NaN above every number.
inline bool beats(float x, float y) { return x > y || (std::isnan(x) && !std::isnan(y)); }

// The k largest of s[0 … n−1], descending, into value and index: each entry goes after those it
// does not beat, so equal values keep their order.
void top_k(const float* s, int64_t n, int64_t k, float* value, int64_t* index) {
  int64_t count = 0;
  for (int64_t j = 0; j < n; ++j) {
    if (count == k && !beats(s[j], value[k - 1])) continue;
    int64_t at = count < k ? count++ : k - 1;
    for (; at > 0 && beats(s[j], value[at - 1]); --at) {
      value[at] = value[at - 1];
      index[at] = index[at - 1];
    }
    value[at] = s[j];
    index[at] = j;
  }
}

struct ProductKeyFunction : torch::autograd::Function<ProductKeyFunction> {
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& s1,
                                                const torch::Tensor& s2, int64_t k) {
    const int64_t R = s1.size(0), n = s1.size(1);
    auto a = s1.contiguous(), b = s2.contiguous();
    auto scores = torch::empty({R, k}, s1.options());
    auto rows = torch::empty({R, k}, s1.options().dtype(torch::kInt64));
    auto sub_keys = torch::empty({R, k, 2}, rows.options());  // the pair each pick sums, for the backward
    const float *pa = a.const_data_ptr<float>(), *pb = b.const_data_ptr<float>();
    float* ps = scores.mutable_data_ptr<float>();
    int64_t *pr = rows.mutable_data_ptr<int64_t>(), *pk = sub_keys.mutable_data_ptr<int64_t>();
    at::parallel_for(0, R, grain(2 * n + k * k), [&](int64_t first, int64_t last) {
      std::vector<float> top1(k), top2(k), sums(k * k);
      std::vector<int64_t> key1(k), key2(k), pick(k);
      for (int64_t r = first; r < last; ++r) {
        top_k(pa + r * n, n, k, top1.data(), key1.data());
        top_k(pb + r * n, n, k, top2.data(), key2.data());
        for (int64_t i = 0; i < k; ++i)
          for (int64_t j = 0; j < k; ++j) sums[i * k + j] = top1[i] + top2[j];
        top_k(sums.data(), k * k, k, ps + r * k, pick.data());
        for (int64_t p = 0; p < k; ++p) {
          const int64_t i = key1[pick[p] / k], j = key2[pick[p] % k];
          pr[r * k + p] = i * n + j;
          pk[(r * k + p) * 2] = i;
          pk[(r * k + p) * 2 + 1] = j;
        }
      }
    });
    ctx->save_for_backward({sub_keys});
    ctx->saved_data["n"] = n;
    ctx->mark_non_differentiable({rows});
    return {scores, rows};
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto sub_keys = ctx->get_saved_variables()[0];
    const int64_t R = sub_keys.size(0), k = sub_keys.size(1), n = ctx->saved_data["n"].toInt();
    auto g = grads[0].contiguous();
    auto ds1 = torch::zeros({R, n}, g.options()), ds2 = torch::zeros({R, n}, g.options());
    const float* pg = g.const_data_ptr<float>();
    const int64_t* pk = sub_keys.const_data_ptr<int64_t>();
    float *p1 = ds1.mutable_data_ptr<float>(), *p2 = ds2.mutable_data_ptr<float>();
    at::parallel_for(0, R, grain(2 * n), [&](int64_t first, int64_t last) {
      for (int64_t r = first; r < last; ++r)
        for (int64_t p = 0; p < k; ++p) {
          p1[r * n + pk[(r * k + p) * 2]] += pg[r * k + p];
          p2[r * n + pk[(r * k + p) * 2 + 1]] += pg[r * k + p];
        }
    });
    return {ds1, ds2, torch::Tensor()};
  }
};

// Bags [first, last): the mean of each one's L rows of weight (D floats each).
XLHOST_CPU_VARIANTS void bag_means(const int64_t* __restrict tokens, int64_t L, const float* __restrict weight,
                                   int64_t D, float* __restrict out, int64_t first, int64_t last) {
  for (int64_t u = first; u < last; ++u) {
    float* y = out + u * D;
    std::fill(y, y + D, 0.0f);
    for (int64_t l = 0; l < L; ++l) add_to(y, weight + tokens[u * L + l] * D, D);
    for (int64_t c = 0; c < D; ++c) y[c] /= static_cast<float>(L);
  }
}

// Columns [c0, c1) of weight's gradient: each bag's gradient / L added to the row of each of its
// tokens, bags and tokens in order. `scaled` holds c1 − c0 floats.
XLHOST_CPU_VARIANTS void add_bag_grads(const int64_t* __restrict tokens, int64_t U, int64_t L,
                                       const float* __restrict grad, int64_t D, float* __restrict grad_weight,
                                       float* __restrict scaled, int64_t c0, int64_t c1) {
  for (int64_t u = 0; u < U; ++u) {
    for (int64_t c = c0; c < c1; ++c) scaled[c - c0] = grad[u * D + c] / static_cast<float>(L);
    for (int64_t l = 0; l < L; ++l) add_to(grad_weight + tokens[u * L + l] * D + c0, scaled, c1 - c0);
  }
}

struct BagMeanFunction : torch::autograd::Function<BagMeanFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& tokens,
                               const torch::Tensor& weight) {
    auto t = tokens.contiguous(), w = weight.contiguous();
    const int64_t U = t.size(0), L = t.size(1), V = w.size(0), D = w.size(1);
    const int64_t* pt = t.const_data_ptr<int64_t>();
    for (int64_t i = 0; i < U * L; ++i)
      TORCH_CHECK(pt[i] >= 0 && pt[i] < V, "memory rows: token ", pt[i], " is not a row of the ", V, "-row embedding");
    auto out = torch::empty({U, D}, w.options());
    at::parallel_for(0, U, grain(L * D), [&](int64_t first, int64_t last) {
      bag_means(pt, L, w.const_data_ptr<float>(), D, out.mutable_data_ptr<float>(), first, last);
    });
    ctx->save_for_backward({t});
    ctx->saved_data["V"] = V;
    return out;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto t = ctx->get_saved_variables()[0];
    auto g = grads[0].contiguous();
    const int64_t U = t.size(0), L = t.size(1), D = g.size(1);
    auto grad_weight = torch::zeros({ctx->saved_data["V"].toInt(), D}, g.options());
    at::parallel_for(0, D, 16, [&](int64_t c0, int64_t c1) {  // columns apart: no two threads add to one float
      std::vector<float> scaled(c1 - c0);
      add_bag_grads(t.const_data_ptr<int64_t>(), U, L, g.const_data_ptr<float>(), D,
                    grad_weight.mutable_data_ptr<float>(), scaled.data(), c0, c1);
    });
    return {torch::Tensor(), grad_weight};
  }
};

}  // namespace

bool cpu_product_keys_apply(const torch::Tensor& s1, const torch::Tensor& s2) {
  auto fits = [](const torch::Tensor& s) { return s.is_cpu() && s.scalar_type() == torch::kFloat32 && s.dim() == 2; };
  return fits(s1) && fits(s2) && s1.sizes() == s2.sizes();
}

std::pair<torch::Tensor, torch::Tensor> cpu_product_key_top_k(const torch::Tensor& s1, const torch::Tensor& s2,
                                                              int64_t k) {
  TORCH_CHECK(k >= 1 && k <= s1.size(1), "product keys: k ", k, " is not in 1 … ", s1.size(1));
  auto out = ProductKeyFunction::apply(s1, s2, k);
  return {out[0], out[1]};
}

bool cpu_distinct_rows_apply(const torch::Tensor& indices) {
  return indices.is_cpu() && indices.scalar_type() == torch::kInt64;
}

std::pair<torch::Tensor, torch::Tensor> cpu_distinct_rows(const torch::Tensor& indices, int64_t rows) {
  auto flat = indices.reshape({-1}).contiguous();
  const int64_t n = flat.numel();
  const int64_t* pi = flat.const_data_ptr<int64_t>();
  std::vector<int64_t> slot(rows, -1);  // where each row went in `distinct`
  std::vector<int64_t> distinct;
  auto inverse = torch::empty({n}, flat.options());
  int64_t* pv = inverse.mutable_data_ptr<int64_t>();
  for (int64_t i = 0; i < n; ++i) {
    TORCH_CHECK(pi[i] >= 0 && pi[i] < rows, "memory rows: index ", pi[i], " is not a row of the ", rows, "-row bank");
    if (slot[pi[i]] < 0) {
      slot[pi[i]] = static_cast<int64_t>(distinct.size());
      distinct.push_back(pi[i]);
    }
    pv[i] = slot[pi[i]];
  }
  return {torch::tensor(distinct, flat.options()), inverse.view(indices.sizes())};
}

bool cpu_bag_mean_applies(const torch::Tensor& tokens, const torch::Tensor& weight) {
  return tokens.is_cpu() && tokens.scalar_type() == torch::kInt64 && tokens.dim() == 2 && tokens.size(1) > 0 &&
         weight.is_cpu() && weight.scalar_type() == torch::kFloat32 && weight.dim() == 2;
}

torch::Tensor cpu_bag_mean(const torch::Tensor& tokens, const torch::Tensor& weight) {
  return BagMeanFunction::apply(tokens, weight);
}

}  // namespace xlhost::sdk
