#include "xlhost/core/util/error.hpp"
#include "xlhost/core/data/tokenizer.hpp"

namespace xlhost::core {

std::vector<int64_t> ByteTokenizer::encode(const std::string& text) const {
  std::vector<int64_t> ids;
  ids.reserve(text.size());
  for (unsigned char c : text) ids.push_back(kFirstByte + c);
  return ids;
}

std::string ByteTokenizer::decode(const std::vector<int64_t>& ids) const {
  std::string text;
  text.reserve(ids.size());
  for (int64_t id : ids)
    if (id >= kFirstByte && id < kFirstByte + 256) text.push_back(static_cast<char>(id - kFirstByte));
  return text;
}

std::unique_ptr<Tokenizer> make_tokenizer(const std::string& name) {
  if (name == "byte") return std::make_unique<ByteTokenizer>();
  throw UserError("data.tokenizer: unknown tokenizer \"" + name + "\" (available: byte)");
}

}  // namespace xlhost::core
