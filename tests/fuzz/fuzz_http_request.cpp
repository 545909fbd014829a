// Requests to the metrics endpoint, from anyone who can reach the port.
#include "fuzz_input.hpp"
#include "xlhost/core/metrics/metrics_server.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static xlhost::core::metrics::Registry registry;
  static bool filled = [] {
    registry.gauge("xl_test", "a gauge", {{"experiment", "fuzz"}}).set(1.5);
    return true;
  }();
  (void)filled;
  const auto answer = xlhost::core::metrics::answer_request(std::string(reinterpret_cast<const char*>(data), size), registry);
  if (answer.rfind("HTTP/1.1 ", 0) != 0) __builtin_trap();
  return 0;
}
