// How often each row of a memory model's bank is read over training (train.memory_usage):
// counted on the device from every training forward's memory reads (sdk::MemoryRead),
// written to memory_usage.bin (experiments/memory_usage_file.hpp) at every logged step,
// and summed up into that step's figures: rows read since the start, rows never read, hot
// rows, and per layer the entropy and Gini coefficient of the reads.
#pragma once

#include <torch/torch.h>

#include <filesystem>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "xlhost/core/run/run_directory.hpp"
#include "xlhost/sdk/model.hpp"

namespace xlhost::core {

class MemoryUsage {
 public:
  // `path` is written when `write` (the rank that writes the run's files). The totals start
  // from the file's records up to `start_step`; later ones (a resumed run repeats those
  // steps) are dropped from the file.
  // `row_text` decodes a bank row for memory_changes.json (the most-changed rows of a bank
  // that drifts from its text, before and now).
  MemoryUsage(const RunDirectory& run, bool write, int64_t start_step,
              std::function<std::string(const torch::Tensor& row)> row_text);

  void add(const std::vector<sdk::MemoryRead>& reads);  // one training forward's
  // A logged step: the reads since the last one go to the file, and the figures of the
  // reads since the start are appended to `figures` (memory_rows_hit, memory_rows_never_hit,
  // memory_hot_rows, in a run that started at step 0 memory_rows_changed (rows whose tokens
  // differ from the text initialisation: an EMA bank), memory_usage_entropy_<layer>,
  // memory_usage_gini_<layer>). Nothing when no read was added since the start.
  void flush(int64_t step, std::vector<std::pair<std::string, double>>& figures);

 private:
  void write_changes(int64_t step, int64_t changed) const;

  std::filesystem::path path_, changes_path_;
  bool write_;
  std::function<std::string(const torch::Tensor& row)> row_text_;
  int64_t start_step_;
  torch::Tensor interval_;  // int64 [layers, rows] on the device: reads since the last flush
  torch::Tensor total_;     // int64 [layers, rows] on the CPU: reads since the start
  torch::Tensor bank_, initial_bank_;  // the bank, and its copy at step 0 (fresh runs only)
};

}  // namespace xlhost::core
