// The launch contract of a data-parallel run: what torchrun (or Slurm, or any launcher
// that sets the same variables) tells each process about its place in the world.
#pragma once

#include <cstdlib>
#include <functional>
#include <optional>
#include <string>

namespace xlhost::core::distributed {

struct LaunchEnvironment {
  int rank = 0, world_size = 1, local_rank = 0, local_world_size = 1;
  std::string master_addr;
  int master_port = 0;
  // torchrun's agent hosts the store (TORCHELASTIC_USE_AGENT_STORE): every rank is a client
  // and keys live under its prefix for this restart (TORCHELASTIC_RESTART_COUNT).
  bool agent_store = false;
  int restart_count = 0;
  std::string launcher;  // "torchrun", "slurm" or "environment"
};

// Reads RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT (Slurm's
// SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID, SLURM_NTASKS_PER_NODE when the first two are
// absent). Nothing when neither is set: a single process. UserError naming the variable
// when one is malformed, or missing from a set that needs it.
std::optional<LaunchEnvironment> launch_environment(
    const std::function<const char*(const char*)>& getenv = [](const char* name) { return std::getenv(name); });

}  // namespace xlhost::core::distributed
