// The c10d base of data-parallel training: Gloo process groups on loopback, and NCCL
// compiled, linked and (with a GPU) run.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <c10/cuda/CUDAFunctions.h>

#include <future>
#include <thread>

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
