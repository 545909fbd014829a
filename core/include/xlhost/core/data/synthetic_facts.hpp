// A deterministic synthetic corpus of facts about invented entities, so that every
// command has real data with no download, and recall of stored facts is measurable.
#pragma once

#include <cstdint>
#include <string>

namespace xlhost::core {

struct SynthOptions {
  int64_t entities = 200;
  int64_t train_documents = 4000;
  int64_t val_documents = 200;
  int64_t facts_per_document = 4;
  int64_t chat_documents = 2000;  // chat_train.jsonl; chat_val.jsonl has a tenth
  int64_t tokenizer_vocab_size = 512;  // tokenizer/
  double knowledge_only_fraction = 0.2;  // facts that appear in knowledge.txt but never in train.jsonl
  uint64_t seed = 1;
};

struct SynthSummary {
  int64_t facts = 0, knowledge_only_facts = 0, train_documents = 0, val_documents = 0;
};

// Writes into out_dir:
//   train.jsonl, val.jsonl   {"text": ...} documents of fact sentences
//   knowledge.txt            one fact sentence per line (every fact)
//   facts.jsonl              {"prompt", "answer", "question", "in_train"} for fact recall
//   fact_choices.jsonl       each fact as a multiple-choice item (its answer among the same
//                            relation's answers about other entities), grouped "in training
//                            text" / "knowledge only": `xlhost eval --task` (task_file.hpp)
//   prompts.txt              generation prompts
//   chat_prompts.txt         questions, the prompts of a chat model
//   chat_train.jsonl, chat_val.jsonl   {"conversations": [...]}: questions about the
//                            training facts answered by their sentences (SFT data)
//   tokenizer/               tokenizer.json and tokenizer_config.json: byte-level BPE of
//                            train.jsonl and chat_train.jsonl, MiniMind's special tokens
SynthSummary write_synthetic_facts(const std::string& out_dir, const SynthOptions& options);

}  // namespace xlhost::core
