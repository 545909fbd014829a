// The memory layers' selection and row embedding on the CPU, in float32, forward and backward
// (memory.cpp calls them; elsewhere it composes ATen ops).
//
// At the quickstart memory model's shape (16×128 queries, 32 sub-keys a half, 4 picks, 1,024
// rows of 64 tokens) ATen's ops cost more than their arithmetic, on a 2-core AMD EPYC (Zen 5):
// the three topk calls of a product-key search, forward and backward, 1.4 ms a layer (topk
// sorts each row through a vector of pairs it allocates, and a row of 16 is below its
// parallel grain, so the third runs on one thread); embedding_bag's backward (a sort of every
// token read) 1.5 ms a layer. With _unique's sort, about a sixth of the model's training step.
#pragma once

#include <torch/torch.h>

#include <utility>

namespace xlhost::sdk {

// s1 and s2 [R, n], float32, on the CPU.
bool cpu_product_keys_apply(const torch::Tensor& s1, const torch::Tensor& s2);

// For each row r: the top k of s1[r] (sub-keys a) and of s2[r] (sub-keys b), then the best k
// of their k² sums s1[r, a] + s2[r, b], as {scores [R, k] (descending), rows a·n + b [R, k]};
// 1 ≤ k ≤ n (c10::Error otherwise).
// Among equal scores the earlier one comes first (sub-key order, then candidate order a·k + b);
// NaN counts as the largest, as in topk. The scores' gradient flows to the two sub-key scores
// each sums.
std::pair<torch::Tensor, torch::Tensor> cpu_product_key_top_k(const torch::Tensor& s1, const torch::Tensor& s2,
                                                              int64_t k);

// indices int64 on the CPU.
bool cpu_distinct_rows_apply(const torch::Tensor& indices);

// indices as above, each a row of a bank of `rows` (c10::Error otherwise): the distinct
// rows in the order of their first appearance, and for each index which of them it is (indices'
// shape). One pass; at::_unique sorted (0.3 ms a layer at the quickstart memory model's shape).
std::pair<torch::Tensor, torch::Tensor> cpu_distinct_rows(const torch::Tensor& indices, int64_t rows);

// tokens int64 [U, L] with L ≥ 1 and weight float32 [V, D] on the CPU.
bool cpu_bag_mean_applies(const torch::Tensor& tokens, const torch::Tensor& weight);

// out[u] = Σ_l weight[tokens[u, l]] / L, [U, D] (embedding_bag's mean), differentiable in weight;
// every token must be a row of weight (c10::Error otherwise). Its backward sums the rows'
// gradients in token order, the same for any thread count.
torch::Tensor cpu_bag_mean(const torch::Tensor& tokens, const torch::Tensor& weight);

}  // namespace xlhost::sdk
