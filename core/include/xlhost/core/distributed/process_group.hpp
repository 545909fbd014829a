// c10d process groups, the distributed engine that ships with LibTorch: a TCPStore for the
// rendezvous and, on it, a Gloo backend (CPU tensors) or an NCCL backend (CUDA tensors).
// Data-parallel training builds on these; nothing here knows about models or training.
#pragma once

#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>

#include <chrono>
#include <string>

namespace xlhost::core::distributed {

enum class BackendKind { gloo, nccl };

struct Rendezvous {
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;  // on rank 0, 0 picks a free port: read it back with store_port()
  int rank = 0, world_size = 1;
  std::chrono::milliseconds timeout{std::chrono::minutes(5)};
};

// Rank 0 hosts the TCPStore and waits for the others; every other rank connects to it.
c10::intrusive_ptr<c10d::Store> connect_store(const Rendezvous& rendezvous);
int store_port(const c10::intrusive_ptr<c10d::Store>& store);  // the TCPStore's port

// A backend for rank/world_size on `store`. Gloo binds its transport to `gloo_hostname`
// (an address or host name of this machine; empty: the host's own name, loopback if it
// does not resolve), or to the interface GLOO_SOCKET_IFNAME names. NCCL uses the current CUDA device and needs one (UserError otherwise).
c10::intrusive_ptr<c10d::Backend> make_backend(BackendKind kind, const c10::intrusive_ptr<c10d::Store>& store,
                                               const Rendezvous& rendezvous, const std::string& gloo_hostname = "");

}  // namespace xlhost::core::distributed
