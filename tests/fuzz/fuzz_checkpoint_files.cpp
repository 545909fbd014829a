// A checkpoint's state.json and manifest.json as a crash or a disk may leave them; the
// input is split at its first NUL into the two files.
#include <cstring>

#include "fuzz_input.hpp"
#include "xlhost/core/checkpoint/checkpoint_directory.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto* split = static_cast<const uint8_t*>(std::memchr(data, 0, size));
  const size_t first = split ? static_cast<size_t>(split - data) : size;
  const auto dir = fuzz::scratch() / "checkpoint";
  std::filesystem::create_directories(dir);
  fuzz::write_input("checkpoint/state.json", data, first);
  fuzz::write_input("checkpoint/manifest.json", split ? split + 1 : data, split ? size - first - 1 : 0);
  fuzz::write_input("checkpoint/model.safetensors", data, size);
  fuzz::refusing_is_fine([&] { xlhost::core::read_checkpoint_state(dir.string()); });
  xlhost::core::verify_checkpoint(dir);
  fuzz::write_input("latest", data, first);
  fuzz::refusing_is_fine([&] { xlhost::core::resolve_checkpoint(fuzz::scratch().string()); });
  return 0;
}
