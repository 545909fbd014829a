#include "xlhost/core/data/tokenizer.hpp"

#include <filesystem>

#include "xlhost/core/data/tokenizer_json.hpp"
#include "xlhost/core/util/error.hpp"

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

std::string ByteTokenizer::token_bytes(int64_t id) const {
  return id >= kFirstByte && id < kFirstByte + 256 ? std::string(1, static_cast<char>(id - kFirstByte)) : std::string();
}

std::unique_ptr<Tokenizer> make_tokenizer(const std::string& name) {
  if (name == "byte") return std::make_unique<ByteTokenizer>();
  if (std::filesystem::exists(name)) return load_tokenizer_json(name);
  throw UserError("data.tokenizer: \"" + name + "\" is neither \"byte\" nor an existing tokenizer.json file");
}

}  // namespace xlhost::core
