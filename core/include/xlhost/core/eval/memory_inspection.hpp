// What a memory model reads, position by position: the rows each layer took from its
// token-id bank (sdk::MemoryRead), their weights and their text, for a prompt and for the
// tokens greedy generation adds to it. `xlhost inspect` prints it.
#pragma once

#include <string>
#include <vector>

#include <torch/torch.h>

#include "xlhost/core/data/tokenizer.hpp"
#include "xlhost/sdk/model.hpp"

namespace xlhost::core {

struct RowRead {
  int64_t row = 0;
  double score = 0;
  std::string text;  // the bank row decoded (padding and special tokens left out), printable_text
};

struct PositionReads {
  int64_t position = 0;
  std::string token;                         // the token at this position (generated: the one it chose)
  std::vector<std::vector<RowRead>> layers;  // per memory layer, the `top` rows by weight
};

struct MemoryInspection {
  std::vector<PositionReads> prompt, generated;
  // The model reads once for the whole sequence (e.g. model's sequence_mean pooling): each
  // position carries that one read.
  bool whole_sequence = false;
};

// UserError when the model records no memory reads (a plugin without a memory).
MemoryInspection inspect_memory(sdk::Model& model, const Tokenizer& tokenizer, const std::vector<int64_t>& prompt_ids,
                                int64_t top, int64_t generate, const torch::Device& device);

// A bank row's token ids as text: padding, BOS and EOS left out (raw bytes).
std::string bank_row_text(const torch::Tensor& row, const Tokenizer& tokenizer);

// As JSON: {"whole_sequence":..,"prompt":[{"position","token","layers":[[{"row","score","text"}]]}],"generated":[...]}.
std::string memory_inspection_json(const MemoryInspection& inspection);

}  // namespace xlhost::core
