// Config files: JSON with comments, sections, typed keys, placeholders.
#include "fuzz_input.hpp"
#include "xlhost/core/config/options.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto schema = xlhost::core::full_schema(
      {xlhost::sdk::int_key("dim", 512, "width", 8, 4096), xlhost::sdk::float_key("dropout", 0.0, "p", 0.0, 1.0),
       xlhost::sdk::string_key("fusion", "cross_attention", "kind", {"cross_attention", "gated_mlp"}),
       xlhost::sdk::bool_key("causal", true, "mask")});
  fuzz::refusing_is_fine([&] {
    auto config = xlhost::core::Config::parse(std::string(reinterpret_cast<const char*>(data), size), "fuzz.json", schema, {});
    xlhost::core::Options::from(config);
    config.to_json();
  });
  return 0;
}
