// tokenizer.json files, then encoding and decoding with whatever loaded: text from the
// input itself (often invalid UTF-8) and a fixed multilingual line with special tokens.
#include "fuzz_input.hpp"
#include "xlhost/core/data/tokenizer_json.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto path = fuzz::write_input("tokenizer.json", data, size);
  fuzz::refusing_is_fine([&] {
    const auto tokenizer = xlhost::core::load_tokenizer_json(path);
    for (const std::string text : {std::string(reinterpret_cast<const char*>(data), std::min<size_t>(size, 512)),
                                   std::string("héllo  wörld\n\t<|im_start|>用户 🙂 123<|im_end|>x")}) {
      fuzz::refusing_is_fine([&] { tokenizer->decode(tokenizer->encode(text)); });
    }
    tokenizer->decode({-1, 0, 1, 2, tokenizer->vocab_size(), tokenizer->vocab_size() - 1});
  });
  return 0;
}
