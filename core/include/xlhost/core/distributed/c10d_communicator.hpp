// The Communicator of a data-parallel run on c10d: the ranks a launcher started
// (launch.hpp) meet in a TCPStore (torchrun's agent store, or one rank 0 hosts) and reduce
// through Gloo (CPU) or NCCL (CUDA). A collective that fails — a rank died, or hung past
// dist.timeout_s — is a UserError naming the ranks whose heartbeat stopped.
#pragma once

#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>

#include <atomic>
#include <chrono>
#include <string>
#include <future>
#include <memory>
#include <thread>
#include <vector>

#include "xlhost/core/distributed/communicator.hpp"
#include "xlhost/core/distributed/launch.hpp"
#include "xlhost/core/distributed/process_group.hpp"

namespace xlhost::core::distributed {

class C10dCommunicator final : public Communicator {
 public:
  // bucket_bytes: the size of the gradient buckets all-reduced while backward runs.
  C10dCommunicator(const LaunchEnvironment& env, BackendKind kind, std::chrono::milliseconds timeout,
                   int64_t bucket_bytes = 32 << 20);
  ~C10dCommunicator() override;

  int rank() const override { return env_.rank; }
  int world_size() const override { return env_.world_size; }
  void expect_gradients(const std::vector<torch::Tensor>& parameters) override;
  void average_gradients(const std::vector<torch::Tensor>& parameters) override;
  double average(double value) override;
  bool any(bool flag) override;
  void broadcast(const std::vector<torch::Tensor>& tensors) override;
  void require_identical(const std::vector<torch::Tensor>& tensors, const std::string& what) override;
  bool synchronize(const std::vector<torch::Tensor>& tensors) override;
  double communication_seconds() const override { return communication_seconds_; }

  const char* backend_name() const { return kind_ == BackendKind::gloo ? "gloo" : "nccl"; }
  int local_rank() const { return env_.local_rank; }
  const std::string& launcher() const { return env_.launcher; }
  std::vector<std::string> hosts();  // every rank's host name, by rank

 private:
  template <typename Communicate>
  void timed(Communicate communicate);
  template <typename Start>
  void collective(const char* operation, Start start_work);
  torch::Tensor on_backend_device(const torch::Tensor& t) const;
  void wait(const c10::intrusive_ptr<c10d::Work>& work, const char* operation);
  // Gradient buckets, in the order backward produces them (last parameters first). Each is
  // all-reduced as soon as it and every bucket before it are complete, so the same
  // collectives run in the same order on every rank while backward goes on.
  struct Bucket {
    std::vector<size_t> members;   // parameter indices
    std::vector<int64_t> offsets;  // of each member in flat
    torch::Tensor flat;
    size_t filled = 0;
    c10::intrusive_ptr<c10d::Work> work;
  };
  void prepare_buckets(const std::vector<torch::Tensor>& parameters);
  void on_gradient(size_t index, const torch::Tensor& gradient);
  void fill(size_t index, const torch::Tensor& total);
  void launch_complete_buckets();
  void all_reduce(torch::Tensor& tensor, c10d::ReduceOp op);
  bool identical(const std::vector<torch::Tensor>& tensors);
  std::string silent_ranks();
  [[noreturn]] void fail(const std::string& operation, const std::exception& e);

  LaunchEnvironment env_;
  BackendKind kind_;
  std::chrono::milliseconds timeout_;
  int64_t bucket_bytes_;
  c10::intrusive_ptr<c10d::Store> store_;
  c10::intrusive_ptr<c10d::Backend> backend_;
  std::vector<torch::Tensor> parameters_;  // those the hooks are registered on
  std::vector<Bucket> buckets_;
  std::vector<std::pair<size_t, size_t>> slot_of_;  // parameter → (bucket, member)
  std::vector<bool> filled_;                        // parameter's gradient is in its bucket
  size_t launched_ = 0;                             // buckets whose all-reduce has started
  bool expecting_ = false;                          // between expect_gradients and average_gradients
  // The heartbeat thread owns what it uses (a store client, this flag): one stuck on a dead
  // link is left behind at exit instead of hanging it.
  std::shared_ptr<std::atomic<bool>> stop_heartbeat_;
  std::future<void> heartbeat_done_;
  double communication_seconds_ = 0;
};

}  // namespace xlhost::core::distributed
