// Knowledge files: one sentence per line, or a JSON array of strings / objects.
#include "fuzz_input.hpp"
#include "xlhost/core/data/knowledge_file.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto path = fuzz::write_input("knowledge.json", data, size);
  fuzz::refusing_is_fine([&] { xlhost::core::read_knowledge_entries(path); });
  return 0;
}
