// What the CPU attention kernel's forward (attention_kernel.cpp) and backward
// (attention_backward.cpp) share: the GEMM and the transpose they call per block, the blocks of
// queries and the keys each multiplies, the tensors' row layout and the dropout of a call.
#pragma once

#include <ATen/native/CPUBlas.h>
#include <torch/torch.h>

#include <algorithm>
#include <vector>

#include "dropout_mask.hpp"
#include "xlhost/sdk/attention.hpp"

namespace xlhost::sdk::attention_blocks {

// C (m × n, row stride ldc) = A (m × k) · B (k × n), row-major, or C += A·B: ATen's
// batch-reduce GEMM (oneDNN's micro-kernels, BLAS where oneDNN has none), called per block
// from the threads of the kernels' parallel loops, each block small enough for its cache.
inline void matmul(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb, float* c,
                   int64_t ldc, bool accumulate) {
  at::native::cpublas::brgemm(m, n, k, lda, ldb, ldc, accumulate, a, b, c);
}

// dst (cols × rows, row stride ldd) = srcᵀ, src rows × cols with row stride lds.
void transpose(const float* src, int64_t rows, int64_t cols, int64_t lds, float* dst, int64_t ldd);

// The GEMM keeps per-thread state (AMX tile configuration where it runs bf16 on AMX).
inline void release_matmul_state() { at::native::cpublas::brgemm_release(); }

// Queries per block: a block's scores (64 × up to S floats) stay in the core's cache while
// they are exponentiated and multiplied. A block's products run in parts of kPartRows queries,
// each over the keys its last query sees: with a causal mask a sixth fewer products (half of
// those a whole block spent on keys its query does not see; the memory fusion's attention,
// 16 × 4 × 128 × 640, took about a tenth less time); the backward's, per chunk of keys a part
// sees first, over the queries from that part on.
inline constexpr int64_t kQueryBlock = 64;
inline constexpr int64_t kPartRows = 32;

// The keys one block of queries multiplies: of each range, those the block's last query sees,
// side by side in each row of the block's scores.
struct BlockKeys {
  struct Range {
    KeyPrefix keys;
    int64_t columns, offset;  // keys multiplied; where they start in a score row
    int64_t seen_by(int64_t t) const { return keys.seen_by(t); }
    // The row loops' length: t's keys rounded up to sixteens in the columns (GCC's remainders are scalar)
    int64_t padded_by(int64_t t) const { return std::min((seen_by(t) + 15) / 16 * 16, columns); }
  };
  BlockKeys(const Visibility& seen, int64_t last_query) {  // seen checked by attention(): no count below 0
    for (const auto& r : seen) {
      const int64_t columns = r.seen_by(last_query);
      ranges.push_back({r, columns, width});
      width += columns;
    }
  }
  std::vector<Range> ranges;
  int64_t width = 0;
};

// Queries first … first + n − 1: the keys of the block (its score rows' layout) and of each of
// its parts (part j: rows j·kPartRows on).
struct QueryBlock {
  QueryBlock(const Visibility& seen, int64_t first, int64_t n) : first(first), n(n), keys(seen, first + n - 1) {
    for (int64_t row = 0; row < n; row += kPartRows) parts.emplace_back(seen, first + std::min(row + kPartRows, n) - 1);
  }
  int64_t rows_of(size_t part) const { return std::min(kPartRows, n - static_cast<int64_t>(part) * kPartRows); }
  int64_t first, n;
  BlockKeys keys;
  std::vector<BlockKeys> parts;
};

// The blocks of T queries: the same for every sequence and head of a call.
inline std::vector<QueryBlock> query_blocks(const Visibility& seen, int64_t T) {
  std::vector<QueryBlock> blocks;
  for (int64_t first = 0; first < T; first += kQueryBlock)
    blocks.emplace_back(seen, first, std::min(kQueryBlock, T - first));
  return blocks;
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
inline torch::Tensor heads_by_time(const torch::Tensor& like, int64_t heads) {
  return torch::empty({like.size(0), like.size(2), heads, like.size(3)}, like.options()).transpose(1, 2);
}

// The dropout of one call (p 0: none).
struct Dropout {
  Dropout(double p, uint64_t key) : p(p), mask(key, p) {}
  double p;
  DropoutMask mask;
};

struct Gradients {
  torch::Tensor dq, dk, dv;
};

// The gradients of attention(q, k, v, seen) with dropout, given its output and the log-sum-exp
// of each query's scores; q, k, v, out and grad_out float32 with contiguous rows.
Gradients backward_pass(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                        const torch::Tensor& out, const torch::Tensor& lse, const torch::Tensor& grad_out,
                        const Visibility& seen, const Dropout& dropout);

}  // namespace xlhost::sdk::attention_blocks
