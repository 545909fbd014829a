// The interface every architecture plugin implements. The host owns the loss, the
// optimizer, data, checkpoints and generation; a Model only maps token ids to logits.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "xlhost/sdk/weight_interop.hpp"

namespace xlhost::sdk {

// What one layer read from a token-id memory bank in one forward: the host's view into a
// memory model (`xlhost inspect`, slot usage over training). Recorded only while the host
// asks (Model::set_memory_probes); a forward records nothing otherwise.
struct MemoryRead {
  int64_t layer = 0;
  torch::Tensor rows;    // int64 [B, T', S]: the bank rows read (T' = T, or 1 when one read serves the sequence)
  torch::Tensor scores;  // float [B, T', S]: each row's weight in the read (the selection's softmax)
  torch::Tensor query;   // [B, T', D']: what the selection was computed from, for checks
  torch::Tensor bank;    // int64 [N, L]: the token-id rows `rows` index (decode with the run's tokenizer)
};

struct ForwardResult {
  torch::Tensor logits;    // [B, T, V]
  torch::Tensor aux_loss;  // scalar, already weighted; undefined when the model has none
  // Named scalars exported by the host as metrics and written to train.log
  // (e.g. memory selection entropy). Names: lower_snake_case.
  std::vector<std::pair<std::string, double>> diagnostics;
  std::vector<MemoryRead> memory_reads;  // one per memory layer, while probes are on
};

// How an evaluation takes a memory away to measure what it contributes: kOff, the memory
// path adds nothing; kShuffle, the bank's rows permuted (seeded); kRandom, random token rows.
enum class MemoryAblation { kNone, kOff, kShuffle, kRandom };

// Per-sequence state for incremental decoding. A model that supports it returns one from
// new_cache(); forward() then consumes only the new tokens and appends to the cache.
struct DecodeCache {
  virtual ~DecodeCache() = default;
  int64_t length = 0;  // tokens already consumed
};

struct ParamGroups {
  std::vector<torch::Tensor> decay;     // weight decay applies
  std::vector<torch::Tensor> no_decay;  // norms, biases
};

// What the host knows about data that a model may need at initialisation time
// (e.g. a knowledge memory initialised from a text file).
struct DataContext {
  std::function<std::vector<int64_t>(const std::string&)> encode;
  int64_t vocab_size = 0;
  int64_t pad_id = 0;
  int64_t bos_id = 1;
  int64_t eos_id = 2;
  std::string knowledge_path;  // empty when the config names none
  // The entries of knowledge_path, read and checked by the host (one per line, or a JSON
  // list of objects with a sentence); empty when there is no knowledge file.
  std::vector<std::string> knowledge_entries;
  std::function<void(const std::string&)> log;  // a line for the run's log
};

class Model : public torch::nn::Module {
 public:
  // tokens: [B, T] int64. With a cache, tokens are the new positions only.
  virtual ForwardResult forward(const torch::Tensor& tokens, DecodeCache* cache = nullptr) = 0;

  // nullptr: the model has no incremental decoding; generation recomputes the prefix.
  virtual std::unique_ptr<DecodeCache> new_cache() { return nullptr; }

  // Default: tensors with two or more dimensions decay, the rest (norm weights, biases) do not.
  // Parameters with requires_grad == false are left out.
  virtual ParamGroups parameter_groups();

  virtual void init_from_data(const DataContext& context) {}

  // Called by the host after every optimizer step (1-based count), outside autograd; for
  // state that is updated by a rule rather than by gradients (e.g. an EMA memory bank).
  virtual void on_optimizer_step(int64_t step) {}

  // Training FLOPs per token (forward + backward) at sequence length seq_len, for
  // throughput and utilisation figures. Default: 6 × parameter count.
  virtual double flops_per_token(int64_t seq_len);

  // Non-empty when this model, as configured, lets position t see tokens after t; the
  // host prints it before training (the loss is then optimistic and generation, which
  // sees only the prefix, behaves differently).
  virtual std::string causality_warning() const { return {}; }

  // How `xlhost export` writes this model and which other names `--init-from` accepts
  // (weight_interop.hpp). Default: neither a Hugging Face form nor a native export.
  virtual WeightInterop weight_interop() const { return {}; }

  int64_t parameter_count(bool trainable_only = true) const;

  // Memory inspection. While on, forward() fills ForwardResult::memory_reads (memory
  // plugins do, with sdk::record_memory_read); off by default, and free when off.
  void set_memory_probes(bool on) { memory_probes_ = on; }
  bool memory_probes() const { return memory_probes_; }

  // The ablations this model supports (memory plugins: all three); apply one for an
  // evaluation with ablate_memory. The default has no memory: none, and ablate_memory throws.
  virtual std::vector<MemoryAblation> memory_ablations() const { return {}; }
  virtual void ablate_memory(MemoryAblation how, uint64_t seed);
  bool memory_off() const { return memory_off_; }

 protected:
  bool memory_off_ = false;  // set by ablate_memory(kOff): a plugin's memory path then adds nothing

 private:
  bool memory_probes_ = false;
};

}  // namespace xlhost::sdk
