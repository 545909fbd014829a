#include "xlhost/core/train/memory_usage.hpp"

#include "xlhost/core/experiments/memory_usage_file.hpp"
#include "xlhost/core/util/file_io.hpp"
#include "xlhost/core/util/json_writer.hpp"

namespace xlhost::core {

namespace {

// Gini coefficient of non-negative counts: 0 when every row is read equally, towards 1
// when a few rows take every read.
double gini(const torch::Tensor& counts) {
  const auto x = std::get<0>(counts.to(torch::kFloat64).sort());
  const double n = static_cast<double>(x.size(0)), total = x.sum().item<double>();
  if (total <= 0) return 0;
  const auto rank = torch::arange(1, x.size(0) + 1, x.options());
  return (2 * (rank * x).sum().item<double>()) / (n * total) - (n + 1) / n;
}

double entropy(const torch::Tensor& counts) {
  const auto c = counts.to(torch::kFloat64);
  const double total = c.sum().item<double>();
  if (total <= 0) return 0;
  const auto p = c.masked_select(c > 0) / total;
  return -(p * p.log()).sum().item<double>();
}

}  // namespace

MemoryUsage::MemoryUsage(const RunDirectory& run, bool write, int64_t start_step,
                         std::function<std::string(const torch::Tensor& row)> row_text)
    : path_(run.memory_usage()),
      changes_path_(run.memory_changes()),
      write_(write),
      row_text_(std::move(row_text)),
      start_step_(start_step) {}

// memory_changes.json: the rows whose tokens differ most from the text initialisation.
void MemoryUsage::write_changes(int64_t step, int64_t changed) const {
  constexpr int64_t kListed = 20;
  const auto differing = (bank_ != initial_bank_).sum(1).to(torch::kCPU);
  const auto [counts, rows] = differing.topk(std::min<int64_t>(kListed, differing.size(0)));
  const auto json = write_json([&](JsonWriter& w) {
    w.StartObject();
    w.Key("step"), w.Int64(step);
    w.Key("rows_changed"), w.Int64(changed);
    w.Key("rows"), w.StartArray();
    for (int64_t i = 0; i < rows.size(0) && counts[i].item<int64_t>() > 0; ++i) {
      const int64_t row = rows[i].item<int64_t>();
      w.StartObject();
      w.Key("row"), w.Int64(row);
      w.Key("tokens_changed"), w.Int64(counts[i].item<int64_t>());
      write_string(w, "before", row_text_(initial_bank_[row]));
      write_string(w, "after", row_text_(bank_[row]));
      w.EndObject();
    }
    w.EndArray();
    w.EndObject();
  });
  write_file_atomically(changes_path_.string(), json + "\n");
}

void MemoryUsage::add(const std::vector<sdk::MemoryRead>& reads) {
  if (reads.empty()) return;
  torch::NoGradGuard no_grad;
  if (!interval_.defined()) {  // the bank's shape is known from the first read
    const int64_t layers = static_cast<int64_t>(reads.size()), rows = reads.front().bank.size(0);
    interval_ = torch::zeros({layers, rows}, reads.front().rows.options().dtype(torch::kInt64));
    bank_ = reads.front().bank;
    if (start_step_ == 0) initial_bank_ = bank_.clone();  // the text initialisation (a resumed run has no copy)
    total_ = torch::zeros({layers, rows}, torch::kInt64);
    if (std::filesystem::exists(path_)) {
      const auto file = write_ ? truncate_memory_usage(path_, start_step_) : read_memory_usage(path_, start_step_);
      auto totals = total_.accessor<int64_t, 2>();
      if (file.layers == layers && static_cast<int64_t>(file.rows) == rows)
        for (const auto& r : file.records)
          for (const auto& [row, n] : r.reads) totals[r.layer][row] += n;
    }
  }
  for (const auto& read : reads) {
    const auto rows = read.rows.reshape({-1});
    interval_[read.layer].index_add_(0, rows, torch::ones_like(rows));
  }
}

void MemoryUsage::flush(int64_t step, std::vector<std::pair<std::string, double>>& figures) {
  if (!interval_.defined()) return;
  const auto interval = interval_.to(torch::kCPU, /*non_blocking=*/false, /*copy=*/true);  // not a view of what zero_() clears
  interval_.zero_();
  total_ += interval;
  const int64_t layers = total_.size(0), rows = total_.size(1);
  if (write_) {
    std::vector<MemoryUsageRecord> records;
    for (int64_t l = 0; l < layers; ++l) {
      MemoryUsageRecord r{step, static_cast<uint32_t>(l), {}};
      const auto hit = interval[l].nonzero().reshape({-1}).contiguous();
      const auto counts = interval[l].index_select(0, hit).contiguous();
      const int64_t *row = hit.data_ptr<int64_t>(), *reads = counts.data_ptr<int64_t>();
      for (int64_t i = 0; i < hit.size(0); ++i)
        r.reads.emplace_back(static_cast<uint32_t>(row[i]), static_cast<uint32_t>(reads[i]));
      records.push_back(std::move(r));
    }
    append_memory_usage(path_, static_cast<uint32_t>(layers), static_cast<uint64_t>(rows), records);
  }
  const auto per_row = total_.sum(0);
  const double hit = (per_row > 0).sum().item<double>();
  const double mean = per_row.sum().item<double>() / static_cast<double>(rows);
  figures.emplace_back("memory_rows_hit", hit);
  figures.emplace_back("memory_rows_never_hit", static_cast<double>(rows) - hit);
  figures.emplace_back("memory_hot_rows", (per_row.to(torch::kFloat64) > 10 * mean).sum().item<double>());
  if (initial_bank_.defined()) {  // banks updated by a rule (EMA) drift from their text
    const int64_t changed = (bank_ != initial_bank_).any(1).sum().item<int64_t>();
    figures.emplace_back("memory_rows_changed", static_cast<double>(changed));
    if (write_ && changed > 0) write_changes(step, changed);
  }
  for (int64_t l = 0; l < layers; ++l) {
    figures.emplace_back("memory_usage_entropy_" + std::to_string(l), entropy(total_[l]));
    figures.emplace_back("memory_usage_gini_" + std::to_string(l), gini(total_[l]));
  }
}

}  // namespace xlhost::core
