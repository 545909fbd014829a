// safetensors files: a length, a JSON header naming dtypes, shapes and byte ranges, data.
#include "fuzz_input.hpp"
#include "xlhost/core/checkpoint/safetensors.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto path = fuzz::write_input("model.safetensors", data, size);
  fuzz::refusing_is_fine([&] {
    std::map<std::string, std::string> metadata;
    xlhost::core::load_safetensors(path, &metadata);
  });
  return 0;
}
