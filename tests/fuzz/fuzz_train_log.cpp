// train.log as read back by exp status, exp report and the dashboard.
#include "fuzz_input.hpp"
#include "xlhost/core/experiments/train_log.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto path = fuzz::write_input("train.log", data, size);
  const auto log = xlhost::core::read_train_log(path);
  for (const auto& s : log.steps) (void)s.objective();
  xlhost::core::last_logged_step(path);
  return 0;
}
