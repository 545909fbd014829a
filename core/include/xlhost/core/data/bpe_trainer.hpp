// Byte-level BPE training in the way of tokenizers' BpeTrainer: special tokens take the
// first ids, then the 256 byte characters, then one token per merge of the most frequent
// adjacent pair (ties: the smaller pair of ids). Deterministic for a given corpus,
// whatever the thread count.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

#include "xlhost/core/data/bpe_tokenizer.hpp"

namespace xlhost::core {

struct BpeTrainingOptions {
  std::vector<std::string> corpus;   // JSON lines: {"text": ...} or {"conversations": [...]} (each content)
  int64_t vocab_size = 6400;         // special tokens and the 256 bytes included
  std::vector<std::string> special;  // ids 0, 1, ... in this order; never split by merges
  bool add_prefix_space = false;
  bool skip_malformed = false;
  int threads = 0;  // for counting words and pairs; 0 = every core
};

struct BpeTrainingReport {
  uint64_t documents = 0, bytes = 0, distinct_words = 0, merges = 0;
  double count_seconds = 0, merge_seconds = 0;
};

// bos, eos and pad follow MiniMind when its special tokens are present (<|im_start|>,
// <|im_end|>, <|endoftext|>), otherwise the first special token is all three.
BpeDefinition train_bpe(const BpeTrainingOptions& options, std::ostream& log, BpeTrainingReport* report = nullptr);

}  // namespace xlhost::core
