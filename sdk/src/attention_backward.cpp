// The CPU attention kernel's backward: per (sequence, KV head) task and block of queries, the
// scores recomputed transposed, a row per key.
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "attention_blocks.hpp"
#include "cpu_loops.hpp"

namespace xlhost::sdk::attention_blocks {
namespace {

// Keys begin … end − 1 of range `range`, first seen in the block by query row `from`: the
// backward's scores are transposed, a row per key, and each chunk's products run over the
// queries from `from` on. seer[j]: the first query row of the block that sees key begin + j.
struct KeyChunk {
  size_t range;
  int64_t begin, end, from;
  int64_t covered;  // keys of the range the earlier blocks saw
  std::vector<int64_t> seer;
};

std::vector<KeyChunk> key_chunks(const QueryBlock& block, const QueryBlock* before) {
  std::vector<KeyChunk> chunks;
  for (size_t i = 0; i < block.keys.ranges.size(); ++i) {
    const auto& keys = block.keys.ranges[i].keys;
    int64_t done = 0;
    for (size_t j = 0; j < block.parts.size(); ++j) {
      const int64_t columns = block.parts[j].ranges[i].columns, from = static_cast<int64_t>(j) * kPartRows;
      if (columns <= done) continue;
      KeyChunk chunk{i, done, columns, from, before != nullptr ? before->keys.ranges[i].columns : 0, {}};
      for (int64_t key = done, row = from; key < columns; ++key) {
        while (keys.seen_by(block.first + row) <= key) ++row;
        chunk.seer.push_back(row);
      }
      chunks.push_back(std::move(chunk));
      done = columns;
    }
  }
  return chunks;
}

// The keys no query sees (first key, count): their gradients are 0.
std::vector<std::pair<int64_t, int64_t>> unseen_keys(const QueryBlock& last, int64_t S) {
  std::vector<std::pair<int64_t, int64_t>> gaps;
  int64_t next = 0;  // the ranges are in key order and apart
  for (const auto& r : last.keys.ranges) {
    if (r.keys.start > next) gaps.emplace_back(next, r.keys.start - next);
    next = r.keys.start + r.columns;
  }
  if (S > next) gaps.emplace_back(next, S - next);
  return gaps;
}

// Key row c of a block's transposed scores, queries from … n − 1 (their log-sum-exp lse and
// D = ⟨dO, O⟩ alongside): in s, p ⊙ factor; in dp (v·dOᵀ on entry), the raw scores' gradient
// scale·p ⊙ (factor ⊙ dp − D); both 0 at the queries before `seer`, the first that sees the key.
XLHOST_CPU_VARIANTS void softmax_grad_column(float* __restrict s, float* __restrict dp, int64_t from, int64_t seer,
                                             int64_t n, float scale, const float* __restrict lse,
                                             const float* __restrict d_rows, const float* __restrict factor) {
  // Sixteen at a time in a loop of fixed length, which GCC vectorises for rows as short as a
  // block's 32 or 64 queries (its vectorised loop over i ran scalar there)
  auto run = [&](auto&& at) {
    int64_t i = from;
    for (; i + 16 <= n; i += 16)
      for (int64_t l = 0; l < 16; ++l) at(i + l);
    for (; i < n; ++i) at(i);
  };
  auto p = [&](int64_t i) { return exp_nonpositive(scale * s[i] - lse[i]) * static_cast<float>(i >= seer); };
  if (factor != nullptr) {
    run([&](int64_t i) {
      const float pi = p(i);
      s[i] = pi * factor[i];
      dp[i] = scale * pi * (factor[i] * dp[i] - d_rows[i]);
    });
  } else {
    run([&](int64_t i) {
      const float pi = p(i);
      s[i] = pi;
      dp[i] = scale * pi * (dp[i] - d_rows[i]);
    });
  }
}

// x (rows × d, row stride ld) = 0.
void zero_rows(float* x, int64_t rows, int64_t d, int64_t ld) {
  for (int64_t i = 0; i < rows; ++i) std::fill(x + i * ld, x + i * ld + d, 0.0f);
}

}  // namespace

// Each task owns one key/value head of one sequence: its dk and dv sum over the query heads it
// serves and their query blocks, written by no other thread, so the sums do not depend on the
// thread count. A block's scores are computed transposed (sᵀ = k·qᵀ, a row per key), so that
// dk += dsᵀ·q and dv += pᵀ·dO read the keys, values and their gradients in place; only the
// keys (dqᵀ = kᵀ·dsᵀ) and a block's queries, output gradients and dq are transposed.
Gradients backward_pass(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                        const torch::Tensor& out, const torch::Tensor& lse, const torch::Tensor& grad_out,
                        const Visibility& seen, const Dropout& dropout) {
  const int64_t B = q.size(0), H = q.size(1), T = q.size(2), d = q.size(3), S = k.size(2), Hkv = k.size(1);
  const int64_t rep = H / Hkv;
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  auto dq = heads_by_time(q, H), dk = heads_by_time(k, Hkv), dv = heads_by_time(v, Hkv);
  const Rows Q(q), K(k), V(v), O(out), dO(grad_out), dQ(dq), dK(dk), dV(dv);
  const float* L = lse.data_ptr<float>();
  const auto blocks = query_blocks(seen, T);
  std::vector<std::vector<KeyChunk>> chunks;
  for (size_t x = 0; x < blocks.size(); ++x) chunks.push_back(key_chunks(blocks[x], x > 0 ? &blocks[x - 1] : nullptr));
  const auto unseen = unseen_keys(blocks.back(), S);
  at::parallel_for(0, B * Hkv, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> kt(d * S), qt(d * kQueryBlock), dot(d * kQueryBlock), dqt(d * kQueryBlock);
    std::vector<float> p(kQueryBlock * S), ds(kQueryBlock * S), factors(kQueryBlock), D(kQueryBlock);
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = task / Hkv, g = task % Hkv;
      transpose(K.at(b, g), S, d, K.row, kt.data(), S);
      for (int64_t h = g * rep; h < (g + 1) * rep; ++h)
        for (size_t x = 0; x < blocks.size(); ++x) {
          const auto& block = blocks[x];
          const int64_t first = block.first, n = block.n, row0 = (b * H + h) * T + first;
          transpose(Q.at(b, h, first), n, d, Q.row, qt.data(), n);
          transpose(dO.at(b, h, first), n, d, dO.row, dot.data(), n);
          for (int64_t i = 0; i < n; ++i) D[i] = sdk::dot(dO.at(b, h, first + i), O.at(b, h, first + i), d);
          std::fill(dqt.begin(), dqt.end(), 0.0f);
          for (const auto& c : chunks[x]) {
            const auto& r = block.keys.ranges[c.range];
            const int64_t keys = c.end - c.begin, key0 = r.keys.start + c.begin, nq = n - c.from;
            float *pc = p.data() + (r.offset + c.begin) * n, *dsc = ds.data() + (r.offset + c.begin) * n;
            matmul(keys, nq, d, K.at(b, g, key0), K.row, qt.data() + c.from, n, pc + c.from, n, false);  // k·qᵀ
            matmul(keys, nq, d, V.at(b, g, key0), V.row, dot.data() + c.from, n, dsc + c.from, n, false);  // v·dOᵀ
            for (int64_t j = 0; j < keys; ++j) {
              const int64_t key = c.begin + j;
              const float* factor = nullptr;
              if (dropout.p > 0) {
                dropout.mask.factors(static_cast<uint64_t>((row0 + c.from) * S + r.keys.start + key), S, nq,
                                     factors.data() + c.from);
                factor = factors.data();
              }
              softmax_grad_column(pc + j * n, dsc + j * n, c.from, c.seer[j], n, scale, L + row0, D.data(), factor);
            }
            // The first query head's blocks write each key's rows of dk and dv, the rest add to them
            const int64_t written = h > g * rep ? keys : std::clamp(c.covered - c.begin, int64_t{0}, keys);
            auto sum_into = [&](const Rows& dx, const float* scores, const Rows& y) {  // dx += scoresᵀ·y
              float* out = dx.at(b, g, key0);
              const float* rows = y.at(b, h, first + c.from);
              if (written > 0) matmul(written, d, nq, scores + c.from, n, rows, y.row, out, dx.row, true);
              if (written < keys)
                matmul(keys - written, d, nq, scores + written * n + c.from, n, rows, y.row, out + written * dx.row,
                       dx.row, false);
            };
            sum_into(dV, pc, dO);  // dv += pᵀ·dO
            sum_into(dK, dsc, Q);  // dk += dsᵀ·q
            matmul(d, nq, keys, kt.data() + key0, S, dsc + c.from, n, dqt.data() + c.from, n, true);  // dqᵀ += kᵀ·dsᵀ
          }
          transpose(dqt.data(), d, n, n, dQ.at(b, h, first), dQ.row);
        }
      for (const auto& [from, count] : unseen) {
        zero_rows(dK.at(b, g, from), count, d, dK.row);
        zero_rows(dV.at(b, g, from), count, d, dV.row);
      }
    }
    release_matmul_state();
  });
  return {dq, dk, dv};
}

}  // namespace xlhost::sdk::attention_blocks
