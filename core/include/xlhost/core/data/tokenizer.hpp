#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace xlhost::core {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  virtual std::vector<int64_t> encode(const std::string& text) const = 0;  // no special tokens
  virtual std::string decode(const std::vector<int64_t>& ids) const = 0;    // special tokens dropped
  virtual int64_t vocab_size() const = 0;
  virtual int64_t pad_id() const = 0;
  virtual int64_t bos_id() const = 0;
  virtual int64_t eos_id() const = 0;
  // Changes whenever encode() could give different ids; part of the token-cache key.
  virtual std::string fingerprint() const = 0;
  // The bytes one token stands for (a special token: its text), for mapping ids to text offsets.
  virtual std::string token_bytes(int64_t id) const = 0;
  // The id of a special token such as "<|im_end|>", -1 when the tokenizer has none.
  virtual int64_t special_id(const std::string& content) const = 0;
};

// MiniMind's special-token layout (pad 0, bos 1, eos 2) followed by the 256 byte values.
class ByteTokenizer : public Tokenizer {
 public:
  static constexpr int64_t kPad = 0, kBos = 1, kEos = 2, kFirstByte = 3;
  std::vector<int64_t> encode(const std::string& text) const override;
  std::string decode(const std::vector<int64_t>& ids) const override;
  int64_t vocab_size() const override { return kFirstByte + 256; }
  int64_t pad_id() const override { return kPad; }
  int64_t bos_id() const override { return kBos; }
  int64_t eos_id() const override { return kEos; }
  std::string fingerprint() const override { return "byte-v1"; }
  std::string token_bytes(int64_t id) const override;
  int64_t special_id(const std::string&) const override { return -1; }
};

// `name` as in the config's data.tokenizer: "byte", or the path of a Hugging Face
// tokenizer.json (byte-level BPE).
std::unique_ptr<Tokenizer> make_tokenizer(const std::string& name);

}  // namespace xlhost::core
