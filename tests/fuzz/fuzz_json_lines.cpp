// Training data: JSON lines with a "text" field, malformed lines skipped and counted.
#include "fuzz_input.hpp"
#include "xlhost/core/data/json_lines.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto path = fuzz::write_input("data.jsonl", data, size);
  size_t characters = 0;
  auto report = xlhost::core::read_json_lines(path, true, [&](const std::string& text) { characters += text.size(); });
  if (report.documents + report.skipped > report.lines) __builtin_trap();
  fuzz::refusing_is_fine([&] { xlhost::core::read_json_lines(path, false, [](const std::string&) {}); });
  return 0;
}
