// Hugging Face tokenizers' byte-level BPE family (GPT-2, MiniMind, Qwen): the same ids as
// the `tokenizers` library for the same tokenizer.json. Text is cut at added tokens, then
// into words by the pre-tokenizer (PCRE2 with Unicode properties), then each word's bytes
// are merged by rank.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "xlhost/core/data/tokenizer.hpp"

namespace xlhost::core {

// A pair of token ids (left, right) as one hash key, for merge tables and pair counts.
inline uint64_t bpe_pair_key(int32_t left, int32_t right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}

// GPT-2's reversible byte → printable character map, as UTF-8: byte 0x20 → "Ġ".
const std::string& byte_level_char(uint8_t byte);

struct AddedToken {
  std::string content;
  int64_t id = 0;
  bool special = true;  // dropped by decode()
};

// One step of the pre-tokenizer. kSplit isolates the matches of `pattern`; kByteLevel
// optionally prefixes a space and splits with the GPT-2 pattern.
struct PreTokenizerStep {
  enum Kind { kSplit, kByteLevel } kind = kByteLevel;
  std::string pattern;  // kSplit only
  bool add_prefix_space = false, use_regex = true;
};

// What tokenizer.json says, resolved to ids.
struct BpeDefinition {
  std::vector<std::string> vocab;                  // id → token in byte-level characters ("" = unused id)
  std::vector<std::pair<int32_t, int32_t>> merges;  // by rank
  std::vector<AddedToken> added;
  std::vector<PreTokenizerStep> pre_tokenizer;
  bool ignore_merges = false;  // a word that is itself in the vocabulary is one token
  std::string bos, eos, pad;   // contents of added tokens (tokenizer_config.json's names)
  bool chatml = true;          // false when tokenizer_config.json names a chat template of another form
};

// Added tokens, then the pre-tokenizer: the words BPE sees, as raw bytes. Shared by
// encoding and by tokenizer training, so both cut text the same way.
class TextSplitter {
 public:
  TextSplitter(const std::vector<AddedToken>& added, const std::vector<PreTokenizerStep>& steps);
  ~TextSplitter();
  TextSplitter(const TextSplitter&) = delete;
  TextSplitter& operator=(const TextSplitter&) = delete;
  // In text order: on_added(token) for each added token found, on_word(bytes) for each word.
  // UserError when `text` is not valid UTF-8.
  void split(std::string_view text, const std::function<void(const AddedToken&)>& on_added,
             const std::function<void(std::string_view)>& on_word) const;

 private:
  struct Regex;
  void pre_tokenize(std::string_view segment, const std::function<void(std::string_view)>& on_word) const;
  std::vector<AddedToken> added_;  // longest first, for leftmost-longest matching
  bool starts_added_[256] = {};    // bytes that begin an added token: elsewhere none is tried
  std::vector<PreTokenizerStep> steps_;
  std::vector<std::unique_ptr<Regex>> regexes_;  // one per step that splits
};

class BpeTokenizer : public Tokenizer {
 public:
  // `fingerprint` changes whenever encode() could: the hash of the files it came from.
  BpeTokenizer(BpeDefinition definition, std::string fingerprint);
  std::vector<int64_t> encode(const std::string& text) const override;
  std::string decode(const std::vector<int64_t>& ids) const override;
  int64_t vocab_size() const override { return static_cast<int64_t>(definition_.vocab.size()); }
  int64_t pad_id() const override { return pad_; }
  int64_t bos_id() const override { return bos_; }
  int64_t eos_id() const override { return eos_; }
  std::string fingerprint() const override { return fingerprint_; }
  std::string token_bytes(int64_t id) const override;
  int64_t special_id(const std::string& content) const override;

  const BpeDefinition& definition() const { return definition_; }
  // The ids of one word (raw bytes) by merging its bytes in rank order.
  void encode_word(std::string_view word, std::vector<int64_t>& out) const;

 private:
  BpeDefinition definition_;
  std::string fingerprint_;
  TextSplitter splitter_;
  int32_t byte_ids_[256];
  std::unordered_map<uint64_t, std::pair<int32_t, int32_t>> merges_;  // (left, right) → (rank, merged id)
  std::unordered_map<std::string, int32_t> word_ids_;                   // byte-level token → id, for ignore_merges
  std::vector<std::string> bytes_;                                      // id → raw bytes
  std::vector<bool> special_;
  int64_t bos_ = 0, eos_ = 0, pad_ = 0;
};

// The contents of invalid UTF-8 sequences replaced by U+FFFD, as decoders do.
std::string utf8_lossy(std::string_view bytes);

}  // namespace xlhost::core
