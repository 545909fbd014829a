// What a run measured, in plain numbers: evaluations, fact recall and the outcome that
// record.json keeps. The trainer fills them, observers and records read them; no LibTorch.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace xlhost::core {

struct EvalResult {
  double loss = 0, perplexity = 0;
  int64_t tokens = 0;  // 0: nothing was evaluated (no val data)
};

struct FactRecall {
  int64_t facts = 0, correct = 0;
  int64_t seen_facts = 0, seen_correct = 0;  // facts that appear in the training text
  double rate() const { return facts ? static_cast<double>(correct) / static_cast<double>(facts) : 0.0; }
  double seen_rate() const { return seen_facts ? static_cast<double>(seen_correct) / static_cast<double>(seen_facts) : 0.0; }
  double unseen_rate() const {
    const int64_t n = facts - seen_facts;
    return n ? static_cast<double>(correct - seen_correct) / static_cast<double>(n) : 0.0;
  }
};

// What the samples after training look like (MiniMind's notes ask for coherence, fluency and
// diversity in every record). distinct-n: distinct token n-grams over all samples / all of
// them (Li et al., 2016); repetition: the mean over samples of the share of 4-grams that
// repeat an earlier 4-gram of the same sample (seq-rep-4, Welleck et al., 2019).
struct GenerationQuality {
  int64_t samples = 0;  // 0: no samples were generated
  double eos_rate = 0, mean_new_tokens = 0, distinct_1 = 0, distinct_2 = 0, repetition_4 = 0;
  std::string reference_run;                 // whose model scored the samples; empty: none
  double reference_perplexity = std::nan("");  // per token of the reference's tokenizer
};

// A config key whose value a resumed run changed (values as JSON text).
struct ConfigChange {
  std::string key, before, after;
};

// A run's outcome. Times are summed over the steps run (evaluation and checkpoints
// excluded): forward + backward + optimizer <= step.
struct RunResults {
  int64_t first_step = 0, steps = 0, parameters = 0;  // steps run: (first_step, steps]
  int64_t parameters_receiving_gradient = -1;          // over the first steps; -1: not measured
  std::vector<std::string> dead_parameters;            // trainable but reached by no gradient
  std::vector<std::string> warnings;                   // what the run warned about (causality, dead parameters)
  int64_t skipped_steps = 0;                           // updates not applied (non-finite or spiking)
  std::vector<double> losses;                          // per optimizer step: cross-entropy (the aux loss apart)
  double final_aux_loss = std::nan("");                // the plugin's aux loss in the last step; NaN when none
  EvalResult val;                                      // at the end; tokens == 0 without val data
  FactRecall facts;                                    // at the end; facts == 0 without eval.facts_path
  double tokens_per_second = 0, wall_seconds = 0;
  double flops_per_token = 0;  // the plugin's training FLOPs per token at the run's seq_len
  double step_seconds = 0, forward_seconds = 0, backward_seconds = 0, optimizer_seconds = 0;
  double communication_seconds = 0;  // in collectives (data-parallel runs); part of optimizer_seconds
  int64_t peak_rss_bytes = 0;
  int64_t peak_cuda_bytes = 0;  // most CUDA memory held by tensors; 0 on the CPU
  std::string checkpoint;       // the last checkpoint written
  // A memory model's reads over training at the last logged step (train.memory_usage):
  // memory_rows_hit, memory_rows_never_hit, ... as in train.log; empty for other models.
  std::vector<std::pair<std::string, double>> memory_usage;
  GenerationQuality generation;  // the samples after training
  std::vector<ConfigChange> config_changes;  // a resumed run: what differs from its checkpoint's config
};

}  // namespace xlhost::core
