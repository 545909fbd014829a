// What the trainer needs from the other ranks of a data-parallel run, and nothing more:
// its place in the world, gradients averaged over all ranks, scalars averaged for
// logging, and decisions (stop now?) that every rank takes together. The single-process
// implementation is the identity; a c10d one (core/distributed) joins real ranks.
#pragma once

#include <torch/types.h>

#include <memory>
#include <string>
#include <vector>

namespace xlhost::core {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  // Called before the backward of an optimizer step's last micro-batch: gradients may then be
  // reduced while that backward still runs.
  virtual void expect_gradients(const std::vector<torch::Tensor>& parameters) {}
  // Replaces every defined gradient by its mean over the ranks, once per optimizer step.
  virtual void average_gradients(const std::vector<torch::Tensor>& parameters) = 0;
  // The mean of `value` over the ranks (losses and rates that are logged).
  virtual double average(double value) = 0;
  // True on every rank when it is true on any rank: one rank's Ctrl-C stops them all.
  virtual bool any(bool flag) = 0;
  // Every rank gets rank 0's values (the start of a run).
  virtual void broadcast(const std::vector<torch::Tensor>& tensors) = 0;
  // UserError unless `tensors` hold the same bytes on every rank.
  virtual void require_identical(const std::vector<torch::Tensor>& tensors, const std::string& what) = 0;
  // Where the ranks' copies differ, rank 0's go to every rank; true when they differed.
  virtual bool synchronize(const std::vector<torch::Tensor>& tensors) = 0;
  // Seconds spent in collectives so far (the cost of data parallelism).
  virtual double communication_seconds() const = 0;
};

// This process alone: rank 0 of a world of 1.
class LocalCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  void average_gradients(const std::vector<torch::Tensor>&) override {}
  double average(double value) override { return value; }
  bool any(bool flag) override { return flag; }
  void broadcast(const std::vector<torch::Tensor>&) override {}
  void require_identical(const std::vector<torch::Tensor>&, const std::string&) override {}
  bool synchronize(const std::vector<torch::Tensor>&) override { return false; }
  double communication_seconds() const override { return 0; }
};

}  // namespace xlhost::core
