#include "xlhost/core/distributed/process_group.hpp"

#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/cuda.h>

#include <cstdlib>

#include "xlhost/core/util/error.hpp"

namespace xlhost::core::distributed {

c10::intrusive_ptr<c10d::Store> connect_store(const Rendezvous& r) {
  if (r.world_size < 1 || r.rank < 0 || r.rank >= r.world_size)
    throw UserError("rank " + std::to_string(r.rank) + " is outside a world of " + std::to_string(r.world_size));
  if (r.master_port < 0 || r.master_port > 65535 || (r.master_port == 0 && r.rank != 0))
    throw UserError("master port " + std::to_string(r.master_port) + " is not a port to connect to");
  c10d::TCPStoreOptions options;
  options.port = static_cast<std::uint16_t>(r.master_port);
  options.isServer = r.rank == 0;
  options.numWorkers = r.world_size;
  options.waitWorkers = false;  // the backends' own rendezvous waits for every rank
  options.timeout = r.timeout;
  try {
    return c10::make_intrusive<c10d::TCPStore>(r.master_addr, options);
  } catch (const c10::Error& e) {
    throw UserError("rank " + std::to_string(r.rank) + ": cannot " + (options.isServer ? "host" : "reach") +
                    " the rendezvous store at " + r.master_addr + ":" + std::to_string(r.master_port) + ": " +
                    e.what_without_backtrace());
  }
}

int store_port(const c10::intrusive_ptr<c10d::Store>& store) {
  return static_cast<int>(c10::dynamic_intrusive_pointer_cast<c10d::TCPStore>(store)->getPort());
}

c10::intrusive_ptr<c10d::Backend> make_backend(BackendKind kind, const c10::intrusive_ptr<c10d::Store>& store,
                                               const Rendezvous& r, const std::string& gloo_hostname) {
  if (kind == BackendKind::gloo) {
    auto options = c10d::ProcessGroupGloo::Options::create(r.timeout);
    // GLOO_SOCKET_IFNAME (as PyTorch reads it) names the interface when the user knows better.
    const char* interface = std::getenv("GLOO_SOCKET_IFNAME");
    options->devices.push_back(interface && *interface ? c10d::ProcessGroupGloo::createDeviceForInterface(interface)
                               : gloo_hostname.empty() ? c10d::ProcessGroupGloo::createDefaultDevice()
                                                       : c10d::ProcessGroupGloo::createDeviceForHostname(gloo_hostname));
    return c10::make_intrusive<c10d::ProcessGroupGloo>(store, r.rank, r.world_size, options);
  }
  if (!torch::cuda::is_available())
    throw UserError("the NCCL backend needs a CUDA device and this machine has none; use Gloo on the CPU");
  auto options = c10d::ProcessGroupNCCL::Options::create();
  options->timeout = r.timeout;
  return c10::make_intrusive<c10d::ProcessGroupNCCL>(store, r.rank, r.world_size, options);
}

}  // namespace xlhost::core::distributed
