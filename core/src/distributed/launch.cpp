#include "xlhost/core/distributed/launch.hpp"

#include <string>

#include "xlhost/core/util/error.hpp"

namespace xlhost::core::distributed {

std::optional<LaunchEnvironment> launch_environment(const std::function<const char*(const char*)>& getenv) {
  auto value = [&](const char* name) -> std::optional<std::string> {
    const char* v = getenv(name);
    return v && *v ? std::optional<std::string>(v) : std::nullopt;
  };
  auto number = [&](const char* name, int min, int fallback) {
    const auto text = value(name);
    if (!text) return fallback;
    size_t used = 0;
    int n = 0;
    try {
      n = std::stoi(*text, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != text->size() || n < min)
      throw UserError(std::string("environment variable ") + name + "=" + *text + ": expected an integer >= " +
                      std::to_string(min));
    return n;
  };
  auto required = [&](const char* name, const std::string& launcher) {
    if (!value(name))
      throw UserError(launcher + " set some of the rank variables but not " + name + ", which every rank needs");
  };

  LaunchEnvironment env;
  if (value("RANK") || value("WORLD_SIZE")) {
    required("RANK", "the launcher");
    required("WORLD_SIZE", "the launcher");
    env.rank = number("RANK", 0, 0), env.world_size = number("WORLD_SIZE", 1, 1);
    env.local_rank = number("LOCAL_RANK", 0, env.rank);
    env.local_world_size = number("LOCAL_WORLD_SIZE", 1, env.world_size);
    env.launcher = value("XLHOST_LAUNCHER") ? "xlhost" : value("TORCHELASTIC_RUN_ID") ? "torchrun" : "environment";
  } else if (value("SLURM_PROCID") && value("SLURM_NTASKS")) {
    env.rank = number("SLURM_PROCID", 0, 0), env.world_size = number("SLURM_NTASKS", 1, 1);
    env.local_rank = number("SLURM_LOCALID", 0, 0);
    env.local_world_size = number("SLURM_NTASKS_PER_NODE", 1, 1);
    env.launcher = "slurm";
  } else {
    return std::nullopt;
  }
  if (env.rank >= env.world_size)
    throw UserError("rank " + std::to_string(env.rank) + " is outside a world of " + std::to_string(env.world_size));
  if (env.world_size > 1) {
    required("MASTER_ADDR", env.launcher);
    required("MASTER_PORT", env.launcher);
  }
  env.master_addr = value("MASTER_ADDR").value_or("127.0.0.1");
  env.master_port = number("MASTER_PORT", 0, 29500);
  if (env.master_port > 65535) throw UserError("MASTER_PORT=" + std::to_string(env.master_port) + " is not a port");
  const auto agent = value("TORCHELASTIC_USE_AGENT_STORE");
  env.agent_store = agent && (*agent == "True" || *agent == "true" || *agent == "1");
  env.restart_count = number("TORCHELASTIC_RESTART_COUNT", 0, 0);
  return env;
}

}  // namespace xlhost::core::distributed
