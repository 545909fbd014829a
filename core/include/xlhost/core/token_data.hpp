// Training data path: JSON lines → token ids (cached on disk, keyed by content hash) →
// memory-mapped token file → fixed-length windows in a deterministic order.
#pragma once

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <string>
#include <vector>

#include "xlhost/core/tokenizer.hpp"

namespace xlhost::core {

struct JsonLinesReport {
  size_t lines = 0;      // non-empty lines seen
  size_t documents = 0;  // lines whose text was delivered
  size_t skipped = 0;    // malformed lines skipped (only with skip_malformed)
  std::vector<std::string> first_problems;  // "file:line: what", at most 5
};

// Calls `on_text` with the "text" field of every line of `path`. A malformed line (not
// JSON, not an object, no string "text") throws UserError naming file and line, unless
// skip_malformed, in which case it is counted and skipped.
JsonLinesReport read_json_lines(const std::string& path, bool skip_malformed,
                                const std::function<void(const std::string&)>& on_text);

// A read-only, memory-mapped array of token ids (uint16 while the vocabulary fits).
class TokenFile {
 public:
  // Tokenises `data_path` (each document as bos + text + eos) into
  // `<cache_dir>/<md5(data)>-<tokenizer fingerprint>.tok` unless that file exists, then maps it.
  static TokenFile open_or_build(const std::string& data_path, const Tokenizer& tokenizer,
                                 const std::string& cache_dir, bool skip_malformed, std::ostream& log);
  static TokenFile open(const std::string& token_path);

  TokenFile(TokenFile&& other) noexcept;
  TokenFile& operator=(TokenFile&&) = delete;
  TokenFile(const TokenFile&) = delete;
  ~TokenFile();

  size_t size() const { return count_; }
  int64_t operator[](size_t i) const { return width_ == 2 ? tokens16_()[i] : tokens32_()[i]; }
  uint64_t documents() const { return documents_; }
  uint64_t skipped() const { return skipped_; }
  const std::string& path() const { return path_; }
  const std::string& data_md5() const { return data_md5_; }

 private:
  TokenFile() = default;
  const uint16_t* tokens16_() const;
  const uint32_t* tokens32_() const;
  std::string path_, data_md5_;
  void* map_ = nullptr;
  size_t map_size_ = 0;
  size_t count_ = 0;
  uint32_t width_ = 2;
  uint64_t documents_ = 0, skipped_ = 0;
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
  int64_t seq_len() const { return seq_len_; }
  int64_t batch_size() const { return batch_size_; }

 private:
  int64_t seq_len_, batch_size_, windows_, batches_per_epoch_;
  uint64_t seed_;
  bool shuffle_;
  int64_t cached_epoch_ = -1;
  std::vector<int64_t> order_;
};

}  // namespace xlhost::core
