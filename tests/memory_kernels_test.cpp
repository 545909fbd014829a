// The memory layers' CPU kernels behind product_key_top_k and embed_memory_rows, against the
// ATen compositions they replace (topk three times; _unique and embedding_bag's mean), forward
// and backward, and their gradients for one and two threads.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "thread_count.hpp"
#include "xlhost/sdk/memory.hpp"

using namespace xlhost;

namespace {

namespace F = torch::nn::functional;

// product_key_top_k as composed from ATen ops (MODELS.md §5.2), given the two halves' scores.
std::pair<torch::Tensor, torch::Tensor> composed_top_k(const torch::Tensor& s1, const torch::Tensor& s2, int64_t k) {
  const int64_t n = s1.size(-1);
  auto [top1, idx1] = s1.topk(k, -1);
  auto [top2, idx2] = s2.topk(k, -1);
  auto combined = (top1.unsqueeze(-1) + top2.unsqueeze(-2)).flatten(-2);
  auto combined_idx = (idx1.unsqueeze(-1) * n + idx2.unsqueeze(-2)).flatten(-2);
  auto [scores, pick] = combined.topk(k, -1);
  return {scores, combined_idx.gather(-1, pick)};
}

// Keys that make the query's halves score s1 and s2: query [R, 2n] = [s1, s2] against identity
// sub-keys, so product_key_top_k sees exactly these scores.
std::pair<torch::Tensor, torch::Tensor> sdk_top_k(const torch::Tensor& s1, const torch::Tensor& s2, int64_t k) {
  const int64_t n = s1.size(-1);
  auto eye = torch::eye(n);
  return sdk::product_key_top_k(torch::cat({s1, s2}, -1), eye, eye, k);
}

}  // namespace

TEST(MemoryKernels, ProductKeyTopKEqualsTheTopkComposition) {
  torch::manual_seed(3);
  for (int64_t k : {1, 4, 8}) {
    auto s1 = torch::randn({2, 7, 32}), s2 = torch::randn({2, 7, 32});
    auto a1 = s1.clone().requires_grad_(true), a2 = s2.clone().requires_grad_(true);
    auto b1 = s1.clone().requires_grad_(true), b2 = s2.clone().requires_grad_(true);
    auto [scores, rows] = sdk_top_k(a1, a2, k);
    auto [want_scores, want_rows] = composed_top_k(b1, b2, k);
    ASSERT_EQ(scores.sizes(), (std::vector<int64_t>{2, 7, k}));
    EXPECT_TRUE(torch::equal(scores, want_scores)) << "k " << k;
    EXPECT_TRUE(torch::equal(rows, want_rows)) << "k " << k;
    auto g = torch::randn({2, 7, k});
    (scores * g).sum().backward();
    (want_scores * g).sum().backward();
    EXPECT_TRUE(torch::allclose(a1.grad(), b1.grad(), 0, 1e-6)) << "k " << k;
    EXPECT_TRUE(torch::allclose(a2.grad(), b2.grad(), 0, 1e-6)) << "k " << k;
  }
  // k past √N is √N, as topk allows.
  auto s = torch::randn({3, 4});
  EXPECT_EQ(sdk_top_k(s, s, 9).first.size(-1), 4);
}

TEST(MemoryKernels, ProductKeyTiesKeepTheEarlierKeyAndNanCountsAsLargest) {
  auto s1 = torch::tensor({{1.0f, 3.0f, 3.0f, 0.0f}}), s2 = torch::tensor({{0.0f, 0.0f, -1.0f, 0.0f}});
  auto [scores, rows] = sdk_top_k(s1, s2, 2);
  // Sub-keys 1 then 2 of the first half, 0 then 1 of the second: candidates (1,0) (1,1) (2,0) (2,1)
  // all score 3; the first two come first.
  EXPECT_TRUE(torch::equal(scores, torch::tensor({{3.0f, 3.0f}})));
  EXPECT_TRUE(torch::equal(rows, torch::tensor({{1 * 4 + 0, 1 * 4 + 1}}, torch::kInt64))) << rows;
  // A NaN sub-key makes its score NaN (and only its: the query has none), which topk ranks first.
  auto keys = torch::eye(4);
  keys[1][1] = NAN;
  auto query = torch::tensor({{0.0f, 1.0f, 5.0f, 1.0f, 0.0f, 2.0f, 0.0f, 0.0f}});
  EXPECT_EQ(sdk::product_key_top_k(query, keys, torch::eye(4), 1).second.item<int64_t>(), 1 * 4 + 1);
}

TEST(MemoryKernels, MemoryRowsEqualEmbeddingBagsMean) {
  torch::manual_seed(5);
  const int64_t rows = 50, length = 6, vocab = 30, D = 37;
  auto bank = torch::randint(vocab, {rows, length});
  auto indices = torch::randint(rows, {3, 9, 4});
  auto weight = torch::randn({vocab, D}).requires_grad_(true);
  auto want_weight = weight.detach().clone().requires_grad_(true);
  auto memory = sdk::embed_memory_rows(bank, indices, weight);
  auto want = F::embedding_bag(bank.index_select(0, indices.reshape({-1})), want_weight,
                               F::EmbeddingBagFuncOptions().mode(torch::kMean))
                  .view({3, 9, 4, D});
  auto per_read = memory.per_read();
  EXPECT_TRUE(torch::allclose(per_read, want, 1e-6, 1e-6));
  // Distinct rows in the order they are first read.
  std::vector<int64_t> first_read;
  for (int64_t i = 0; i < indices.numel(); ++i) {
    const int64_t row = indices.reshape({-1})[i].item<int64_t>();
    if (std::find(first_read.begin(), first_read.end(), row) == first_read.end()) first_read.push_back(row);
  }
  auto want_distinct = F::embedding_bag(bank.index_select(0, torch::tensor(first_read)), weight.detach(),
                                        F::EmbeddingBagFuncOptions().mode(torch::kMean));
  EXPECT_TRUE(torch::allclose(memory.embedded, want_distinct, 1e-6, 1e-6));
  auto g = torch::randn({3, 9, 4, D});
  (per_read * g).sum().backward();
  (want * g).sum().backward();
  EXPECT_TRUE(torch::allclose(weight.grad(), want_weight.grad(), 1e-5, 1e-5));
  EXPECT_THROW(sdk::embed_memory_rows(torch::full({rows, length}, vocab, torch::kInt64), indices, weight), c10::Error);
  EXPECT_THROW(sdk::embed_memory_rows(bank, torch::full({2, 2}, rows, torch::kInt64), weight), c10::Error);
}

TEST(MemoryKernels, GradientsAreTheSameForOneAndTwoThreads) {
  torch::manual_seed(9);
  auto bank = torch::randint(40, {64, 8});
  auto indices = torch::randint(64, {4, 16, 4});
  auto s1 = torch::randn({300, 16}), s2 = torch::randn({300, 16});
  auto grads = [&] {
    torch::manual_seed(10);
    auto weight = torch::randn({40, 200}).requires_grad_(true);
    auto memory = sdk::embed_memory_rows(bank, indices, weight);
    (memory.per_read() * torch::randn({4, 16, 4, 200})).sum().backward();
    auto a = s1.clone().requires_grad_(true), b = s2.clone().requires_grad_(true);
    auto scores = sdk_top_k(a, b, 4).first;
    (scores * torch::randn({300, 4})).sum().backward();
    return std::vector<torch::Tensor>{weight.grad(), a.grad(), b.grad()};
  };
  auto two = test::on_threads(2, grads), one = test::on_threads(1, grads);
  for (size_t i = 0; i < one.size(); ++i) EXPECT_TRUE(torch::equal(one[i], two[i])) << "gradient " << i;
}
