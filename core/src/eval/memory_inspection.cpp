#include "xlhost/core/eval/memory_inspection.hpp"

#include "xlhost/core/util/error.hpp"
#include "xlhost/core/util/json_writer.hpp"
#include "xlhost/core/util/printable_text.hpp"

namespace xlhost::core {

namespace {

// The reads at position t of one forward's probes (t clamped for a whole-sequence read).
PositionReads reads_at(const std::vector<sdk::MemoryRead>& reads, int64_t t, int64_t top, const Tokenizer& tokenizer) {
  PositionReads p;
  p.position = t;
  for (const auto& read : reads) {
    const int64_t at = std::min<int64_t>(t, read.rows.size(1) - 1);
    const auto rows = read.rows[0][at].to(torch::kCPU), scores = read.scores[0][at].to(torch::kCPU, torch::kFloat64);
    const auto order = scores.argsort(/*stable=*/true, /*dim=*/0, /*descending=*/true);
    std::vector<RowRead> layer;
    for (int64_t k = 0; k < std::min<int64_t>(top, order.size(0)); ++k) {
      const int64_t i = order[k].item<int64_t>(), row = rows[i].item<int64_t>();
      layer.push_back({row, scores[i].item<double>(), printable_text(bank_row_text(read.bank[row], tokenizer))});
    }
    p.layers.push_back(std::move(layer));
  }
  return p;
}

}  // namespace

std::string bank_row_text(const torch::Tensor& row, const Tokenizer& tokenizer) {
  std::vector<int64_t> ids;
  const auto cpu = row.to(torch::kCPU);
  for (int64_t i = 0; i < cpu.size(0); ++i) {
    const int64_t id = cpu[i].item<int64_t>();
    if (id != tokenizer.pad_id() && id != tokenizer.bos_id() && id != tokenizer.eos_id()) ids.push_back(id);
  }
  return tokenizer.decode(ids);
}

MemoryInspection inspect_memory(sdk::Model& model, const Tokenizer& tokenizer, const std::vector<int64_t>& prompt_ids,
                                int64_t top, int64_t generate, const torch::Device& device) {
  torch::NoGradGuard no_grad;
  model.eval();
  model.set_memory_probes(true);
  std::vector<int64_t> ids = prompt_ids;
  auto forward = [&] {
    auto result = model.forward(torch::tensor(ids, torch::kInt64).view({1, -1}).to(device));
    if (result.memory_reads.empty())
      throw UserError("this model records no memory reads (its plugin has no memory probes): nothing to inspect");
    return result;
  };
  MemoryInspection inspection;
  auto result = forward();
  inspection.whole_sequence = result.memory_reads.front().rows.size(1) == 1 && ids.size() > 1;
  for (size_t t = 0; t < ids.size(); ++t) {
    inspection.prompt.push_back(reads_at(result.memory_reads, static_cast<int64_t>(t), top, tokenizer));
    inspection.prompt.back().token = printable_text(tokenizer.decode({ids[t]}));
  }
  // Greedy, recomputing the prefix: each generated token with what the model read to choose it.
  for (int64_t n = 0; n < generate; ++n) {
    const int64_t last = static_cast<int64_t>(ids.size()) - 1;
    const int64_t next = result.logits[0][last].argmax().item<int64_t>();
    inspection.generated.push_back(reads_at(result.memory_reads, last, top, tokenizer));
    inspection.generated.back().position = last + 1;
    inspection.generated.back().token = printable_text(tokenizer.decode({next}));
    if (next == tokenizer.eos_id()) break;
    ids.push_back(next);
    result = forward();
  }
  model.set_memory_probes(false);
  return inspection;
}

std::string memory_inspection_json(const MemoryInspection& inspection) {
  auto positions = [](JsonWriter& w, const char* key, const std::vector<PositionReads>& list) {
    w.Key(key), w.StartArray();
    for (const auto& p : list) {
      w.StartObject();
      w.Key("position"), w.Int64(p.position);
      write_string(w, "token", p.token);
      w.Key("layers"), w.StartArray();
      for (const auto& layer : p.layers) {
        w.StartArray();
        for (const auto& r : layer) {
          w.StartObject();
          w.Key("row"), w.Int64(r.row);
          w.Key("score"), w.Double(r.score);
          write_string(w, "text", r.text);
          w.EndObject();
        }
        w.EndArray();
      }
      w.EndArray();
      w.EndObject();
    }
    w.EndArray();
  };
  return write_json([&](JsonWriter& w) {
    w.StartObject();
    w.Key("whole_sequence"), w.Bool(inspection.whole_sequence);
    positions(w, "prompt", inspection.prompt);
    positions(w, "generated", inspection.generated);
    w.EndObject();
  });
}

}  // namespace xlhost::core
