#include "xlhost/core/run/runtime_info.hpp"

#include <sstream>

namespace xlhost::core {

std::string describe(const RuntimeInfo& info) {
  auto or_none = [](const std::string& s) { return s.empty() ? std::string("none") : s; };
  std::ostringstream out;
  out << "libtorch: " << info.libtorch << "\n"
      << "cuda (built with): " << or_none(info.cuda) << "\n"
      << "cudnn: " << or_none(info.cudnn) << "\n"
      << "nccl: " << or_none(info.nccl) << "\n"
      << "cuda devices: " << info.cuda_devices.size();
  for (size_t i = 0; i < info.cuda_devices.size(); ++i) out << (i ? ", " : " (") << info.cuda_devices[i];
  if (!info.cuda_devices.empty()) out << ")";
  out << "\n";
  return out.str();
}

}  // namespace xlhost::core
