// Training data path: JSON lines → token ids (cached on disk, keyed by content hash) →
// memory-mapped token file → fixed-length windows in a deterministic order.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

#include "xlhost/core/data/tokenizer.hpp"

namespace xlhost::core {

// kText: lines {"text": ...}, each document as bos + text + eos, every token in the loss.
// kChat: lines {"conversations": [...]} rendered as ChatML (data/chat.hpp), with a mask.
enum class DocumentFormat { kText, kChat };

// A read-only, memory-mapped array of token ids (uint16 while the vocabulary fits) and,
// for chat data, which of them are in the loss.
class TokenFile {
 public:
  // Tokenises `data_path` into `<cache_dir>/<md5(data)>-<tokenizer fingerprint>[-chat].tok`
  // unless that file exists, then maps it.
  static TokenFile open_or_build(const std::string& data_path, const Tokenizer& tokenizer,
                                 const std::string& cache_dir, bool skip_malformed, std::ostream& log,
                                 DocumentFormat format = DocumentFormat::kText);
  static TokenFile open(const std::string& token_path);
  static constexpr size_t kHeaderBytes = 72;

  TokenFile(TokenFile&& other) noexcept;
  TokenFile& operator=(TokenFile&&) = delete;
  TokenFile(const TokenFile&) = delete;
  ~TokenFile();

  size_t size() const { return count_; }
  int64_t operator[](size_t i) const { return width_ == 2 ? tokens16_()[i] : tokens32_()[i]; }
  // Whether token i counts as a prediction target (chat data: assistant tokens only).
  bool in_loss(size_t i) const {
    return !has_mask_ || static_cast<const uint8_t*>(map_)[kHeaderBytes + count_ * width_ + i] != 0;
  }
  uint64_t documents() const { return documents_; }
  const std::string& path() const { return path_; }
  const std::string& source() const { return source_; }  // the data file it was built from (path() when unknown)

 private:
  TokenFile() = default;
  const uint16_t* tokens16_() const;
  const uint32_t* tokens32_() const;
  std::string path_, source_;
  void* map_ = nullptr;
  size_t map_size_ = 0;
  size_t count_ = 0;
  uint32_t width_ = 2;
  bool has_mask_ = false;
  uint64_t documents_ = 0;
};

// Windows of seq_len + 1 tokens at stride seq_len (inputs and shifted targets), grouped
// into batches. Micro-batch g of the whole run is a pure function of (seed, g), so the
// data position of a checkpoint is one integer.
class WindowSampler {
 public:
  WindowSampler(const TokenFile& tokens, int64_t seq_len, int64_t batch_size, uint64_t seed, bool shuffle);
  int64_t batches_per_epoch() const { return batches_per_epoch_; }
  // Start offsets (in tokens) of the windows of micro-batch `global_index`.
  std::vector<int64_t> window_starts(int64_t global_index);

 private:
  int64_t seq_len_, batch_size_, windows_, batches_per_epoch_;
  uint64_t seed_;
  bool shuffle_;
  int64_t cached_epoch_ = -1;
  std::vector<int64_t> order_;
};

}  // namespace xlhost::core
