// The c10d base of data-parallel training: Gloo process groups on loopback, and NCCL
// compiled, linked and (with a GPU) run.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <c10/cuda/CUDAFunctions.h>

#include <future>
#include <map>
#include <optional>
#include <thread>

#include "xlhost/core/distributed/launch.hpp"
#include "xlhost/core/distributed/process_group.hpp"
#include "xlhost/core/util/error.hpp"

namespace dist = xlhost::core::distributed;

namespace {

// Runs `body(rank, rendezvous)` for every rank on its own thread: rank 0 hosts the store
// on a free port and hands the port to the others.
template <typename Body>
void run_ranks(int world_size, Body body) {
  std::promise<int> port;
  auto port_ready = port.get_future().share();
  std::vector<std::future<void>> ranks;
  for (int rank = 0; rank < world_size; ++rank) {
    ranks.push_back(std::async(std::launch::async, [&, rank] {
      dist::Rendezvous r;
      r.rank = rank, r.world_size = world_size, r.timeout = std::chrono::seconds(60);
      r.master_port = 0;
      c10::intrusive_ptr<c10d::Store> store;
      if (rank == 0) {
        store = dist::connect_store(r);
        port.set_value(dist::store_port(store));
      } else {
        r.master_port = port_ready.get();
        store = dist::connect_store(r);
      }
      body(rank, r, store);
    }));
  }
  for (auto& f : ranks) f.get();  // rethrows a rank's failure
}

}  // namespace

TEST(ProcessGroup, GlooAllReduceOfTwoRanksOnLoopback) {
  std::vector<torch::Tensor> results(2);
  run_ranks(2, [&](int rank, const dist::Rendezvous& r, const c10::intrusive_ptr<c10d::Store>& store) {
    auto backend = dist::make_backend(dist::BackendKind::gloo, store, r, "127.0.0.1");
    EXPECT_EQ(backend->getRank(), rank);
    EXPECT_EQ(backend->getSize(), 2);
    // rank 0 holds 1, 2, 3; rank 1 holds 10, 20, 30.
    std::vector<torch::Tensor> tensors{torch::tensor({1.f, 2.f, 3.f}) * (rank == 0 ? 1 : 10)};
    backend->allreduce(tensors)->wait();
    results[rank] = tensors[0];
  });
  for (const auto& t : results) EXPECT_TRUE(torch::equal(t, torch::tensor({11.f, 22.f, 33.f}))) << t;
}

TEST(ProcessGroup, RankOutsideTheWorldIsAUserError) {
  dist::Rendezvous r;
  r.rank = 2, r.world_size = 2;
  EXPECT_THROW(dist::connect_store(r), xlhost::core::UserError);
}

TEST(ProcessGroup, NcclWithoutGpuIsOneClearErrorAndWithGpusAllReduces) {
  if (!torch::cuda::is_available()) {
    run_ranks(1, [](int, const dist::Rendezvous& r, const c10::intrusive_ptr<c10d::Store>& store) {
      try {
        dist::make_backend(dist::BackendKind::nccl, store, r);
        FAIL() << "an NCCL backend without a GPU";
      } catch (const xlhost::core::UserError& e) {
        EXPECT_NE(std::string(e.what()).find("needs a CUDA device"), std::string::npos) << e.what();
      }
    });
    GTEST_SKIP() << "no CUDA device: ProcessGroupNCCL is compiled and linked, its all-reduce not run";
  }
  const int world = static_cast<int>(std::min<size_t>(2, torch::cuda::device_count()));
  std::vector<torch::Tensor> results(world);
  run_ranks(world, [&](int rank, const dist::Rendezvous& r, const c10::intrusive_ptr<c10d::Store>& store) {
    c10::cuda::set_device(static_cast<c10::DeviceIndex>(rank));
    auto backend = dist::make_backend(dist::BackendKind::nccl, store, r);
    std::vector<torch::Tensor> tensors{torch::full({4}, rank + 1.0f, torch::Device(torch::kCUDA, rank))};
    backend->allreduce(tensors)->wait();
    results[rank] = tensors[0].cpu();
  });
  const float sum = world == 1 ? 1.f : 3.f;
  for (const auto& t : results) EXPECT_TRUE(torch::equal(t, torch::full({4}, sum))) << t;
}

namespace {

// launch_environment over a fixed set of variables instead of the process's.
std::optional<dist::LaunchEnvironment> launch_with(std::map<std::string, std::string> vars) {
  return dist::launch_environment([&](const char* name) -> const char* {
    auto it = vars.find(name);
    return it == vars.end() ? nullptr : it->second.c_str();
  });
}

}  // namespace

TEST(LaunchEnvironment, NoLauncherVariablesMeanOneProcess) { EXPECT_FALSE(launch_with({}).has_value()); }

TEST(LaunchEnvironment, TorchrunVariablesAndItsAgentStore) {
  const auto env = launch_with({{"RANK", "3"}, {"WORLD_SIZE", "4"}, {"LOCAL_RANK", "1"}, {"LOCAL_WORLD_SIZE", "2"},
                                {"MASTER_ADDR", "node7"}, {"MASTER_PORT", "29400"}, {"TORCHELASTIC_RUN_ID", "x"},
                                {"TORCHELASTIC_USE_AGENT_STORE", "True"}, {"TORCHELASTIC_RESTART_COUNT", "2"}});
  ASSERT_TRUE(env.has_value());
  EXPECT_EQ(env->rank, 3);
  EXPECT_EQ(env->world_size, 4);
  EXPECT_EQ(env->local_rank, 1);
  EXPECT_EQ(env->local_world_size, 2);
  EXPECT_EQ(env->master_addr, "node7");
  EXPECT_EQ(env->master_port, 29400);
  EXPECT_TRUE(env->agent_store);
  EXPECT_EQ(env->restart_count, 2);
  EXPECT_EQ(env->launcher, "torchrun");
}

TEST(LaunchEnvironment, SlurmVariablesWhenTorchrunsAreAbsent) {
  const auto env = launch_with({{"SLURM_PROCID", "5"}, {"SLURM_NTASKS", "8"}, {"SLURM_LOCALID", "1"},
                                {"SLURM_NTASKS_PER_NODE", "4"}, {"MASTER_ADDR", "n1"}, {"MASTER_PORT", "29500"}});
  ASSERT_TRUE(env.has_value());
  EXPECT_EQ(env->rank, 5);
  EXPECT_EQ(env->world_size, 8);
  EXPECT_EQ(env->local_rank, 1);
  EXPECT_EQ(env->local_world_size, 4);
  EXPECT_EQ(env->launcher, "slurm");
  EXPECT_FALSE(env->agent_store);
}

TEST(LaunchEnvironment, MalformedOrMissingVariablesAreNamed) {
  auto message = [](std::map<std::string, std::string> vars) {
    try {
      launch_with(vars);
    } catch (const xlhost::core::UserError& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  EXPECT_NE(message({{"RANK", "one"}, {"WORLD_SIZE", "2"}}).find("RANK=one"), std::string::npos);
  EXPECT_NE(message({{"RANK", "0"}, {"WORLD_SIZE", "2"}}).find("MASTER_ADDR"), std::string::npos);
  EXPECT_NE(message({{"RANK", "2"}, {"WORLD_SIZE", "2"}}).find("outside a world of 2"), std::string::npos);
  EXPECT_NE(message({{"WORLD_SIZE", "2"}}).find("RANK"), std::string::npos);
  EXPECT_NE(message({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "a"}, {"MASTER_PORT", "70000"}}).find("not a port"),
            std::string::npos);
}
