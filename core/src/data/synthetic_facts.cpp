#include "xlhost/core/data/synthetic_facts.hpp"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <filesystem>
#include <sstream>
#include <fstream>
#include <random>
#include <set>
#include <vector>

#include "xlhost/core/data/bpe_trainer.hpp"
#include "xlhost/core/data/tokenizer_json.hpp"
#include "xlhost/core/util/error.hpp"

namespace xlhost::core {

namespace {

// mt19937_64 is fully specified by the standard; distributions are not, so draws use
// plain modulo to keep the corpus identical across standard libraries.
struct Rng {
  explicit Rng(uint64_t seed) : engine(seed) {}
  uint64_t below(uint64_t n) { return engine() % n; }
  std::mt19937_64 engine;
};

std::string capitalised_name(Rng& rng, int syllables) {
  static const char* onsets[] = {"b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "qu", "th"};
  static const char* vowels[] = {"a", "e", "i", "o", "u", "ia", "or", "en"};
  std::string name;
  for (int i = 0; i < syllables; ++i) name += std::string(onsets[rng.below(16)]) + vowels[rng.below(8)];
  name[0] = static_cast<char>(std::toupper(name[0]));
  return name;
}

struct Relation {
  const char* prompt;    // prompt text before the object, {} = subject
  const char* suffix;    // after the object
  const char* question;  // the same fact asked in a chat
};

const Relation kRelations[] = {
    {"The capital of {} is", ".", "What is the capital of {}?"},
    {"The favourite colour of {} is", ".", "What is the favourite colour of {}?"},
    {"{} was founded in the year", ".", "In which year was {} founded?"},
    {"The river that runs through {} is the", ".", "Which river runs through {}?"},
};

const char* kColours[] = {"red", "blue", "green", "amber", "violet", "silver", "ochre", "teal"};

struct Fact {
  std::string prompt, answer, suffix, question;
  bool in_train = true;
  std::string sentence() const { return prompt + answer + suffix; }
};

std::string fill(const char* pattern, const std::string& subject) {
  std::string s = pattern;
  s.replace(s.find("{}"), 2, subject);
  return s;
}

std::string json_object(std::initializer_list<std::pair<const char*, std::string>> strings, const char* bool_key = nullptr,
                        bool bool_value = false) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  writer.StartObject();
  for (const auto& [k, v] : strings) writer.Key(k), writer.String(v.c_str(), static_cast<rapidjson::SizeType>(v.size()));
  if (bool_key) writer.Key(bool_key), writer.Bool(bool_value);
  writer.EndObject();
  return buffer.GetString();
}

// Conversations in MiniMind's SFT form: one to three questions about training facts, each
// answered by the fact's sentence, sometimes after a system message.
void write_conversations(const std::string& path, const std::vector<const Fact*>& pool, int64_t count, Rng& rng) {
  std::ofstream out(path);
  for (int64_t d = 0; d < count; ++d) {
    rapidjson::StringBuffer buffer;
    rapidjson::Writer<rapidjson::StringBuffer> w(buffer);
    auto message = [&](const char* role, const std::string& content) {
      w.StartObject();
      w.Key("role"), w.String(role);
      w.Key("content"), w.String(content.c_str(), static_cast<rapidjson::SizeType>(content.size()));
      w.EndObject();
    };
    w.StartObject();
    w.Key("conversations");
    w.StartArray();
    if (rng.below(4) == 0) message("system", "You are a helpful assistant who knows the facts of the invented world.");
    for (uint64_t turn = 0, turns = 1 + rng.below(3); turn < turns; ++turn) {
      const Fact& f = *pool[rng.below(pool.size())];
      message("user", f.question);
      message("assistant", f.sentence());
    }
    w.EndArray();
    w.EndObject();
    out << buffer.GetString() << "\n";
  }
  if (!out) throw UserError(path + ": cannot write");
}

void write_documents(const std::string& path, const std::vector<const Fact*>& pool, int64_t count, int64_t per_doc,
                     Rng& rng) {
  std::ofstream out(path);
  for (int64_t d = 0; d < count; ++d) {
    std::string text;
    for (int64_t i = 0; i < per_doc; ++i) {
      if (i) text += ' ';
      text += pool[rng.below(pool.size())]->sentence();
    }
    out << json_object({{"text", text}}) << "\n";
  }
  if (!out) throw UserError(path + ": cannot write");
}

// The multiple-choice twin of fact recall (an xlhost task file): each fact's prompt with
// its answer among three answers of the same relation about other entities. Its own
// random stream, so that the other files stay what they were before it existed.
void write_fact_choices(const std::string& path, const std::vector<Fact>& facts, uint64_t seed) {
  Rng rng(seed ^ 0x6d635f6661637473ULL);
  std::ofstream out(path);
  for (size_t i = 0; i < facts.size(); ++i) {
    std::vector<std::string> choices{facts[i].answer.substr(1)};  // answers start with the space before them
    for (int tries = 0; choices.size() < 4 && tries < 1000; ++tries) {
      const auto& other = facts[(i % 4) + 4 * rng.below(facts.size() / 4)].answer.substr(1);  // the same relation
      if (std::find(choices.begin(), choices.end(), other) == choices.end()) choices.push_back(other);
    }
    const size_t gold = rng.below(choices.size());
    std::swap(choices[0], choices[gold]);
    rapidjson::StringBuffer buffer;
    rapidjson::Writer<rapidjson::StringBuffer> w(buffer);
    w.StartObject();
    w.Key("context"), w.String(facts[i].prompt.c_str());
    w.Key("choices"), w.StartArray();
    for (const auto& c : choices) w.String(c.c_str());
    w.EndArray();
    w.Key("gold"), w.Int64(static_cast<int64_t>(gold));
    w.Key("group"), w.String(facts[i].in_train ? "in training text" : "knowledge only");
    w.EndObject();
    out << buffer.GetString() << "\n";
  }
  if (!out) throw UserError(path + ": cannot write");
}

}  // namespace

SynthSummary write_synthetic_facts(const std::string& out_dir, const SynthOptions& o) {
  if (o.entities < 1 || o.train_documents < 1 || o.val_documents < 1 || o.facts_per_document < 1 || o.chat_documents < 1)
    throw UserError("data synth: entities, documents and facts per document must be at least 1");
  std::filesystem::create_directories(out_dir);
  Rng rng(o.seed);

  std::set<std::string> used;
  auto unique_name = [&](int syllables) {
    for (;;) {
      auto name = capitalised_name(rng, syllables);
      if (used.insert(name).second) return name;
    }
  };

  std::vector<Fact> facts;
  for (int64_t e = 0; e < o.entities; ++e) {
    const std::string subject = unique_name(3);
    const std::string objects[] = {unique_name(2), kColours[rng.below(8)], std::to_string(1000 + rng.below(1000)),
                                   unique_name(2)};
    for (size_t r = 0; r < 4; ++r)
      facts.push_back({fill(kRelations[r].prompt, subject), " " + objects[r], kRelations[r].suffix,
                       fill(kRelations[r].question, subject), true});
  }
  std::vector<const Fact*> train_pool;
  SynthSummary summary;
  for (auto& f : facts) {
    f.in_train = static_cast<double>(rng.below(1000000)) / 1e6 >= o.knowledge_only_fraction;
    if (f.in_train) train_pool.push_back(&f);
    else ++summary.knowledge_only_facts;
  }
  if (train_pool.empty()) throw UserError("data synth: knowledge_only_fraction leaves no facts for training");

  const std::string dir = out_dir + "/";
  write_documents(dir + "train.jsonl", train_pool, o.train_documents, o.facts_per_document, rng);
  write_documents(dir + "val.jsonl", train_pool, o.val_documents, o.facts_per_document, rng);

  std::ofstream knowledge(dir + "knowledge.txt"), recall(dir + "facts.jsonl"), prompts(dir + "prompts.txt"),
      questions(dir + "chat_prompts.txt");
  for (const auto& f : facts) {
    knowledge << f.sentence() << "\n";
    recall << json_object({{"prompt", f.prompt}, {"answer", f.answer}, {"question", f.question}}, "in_train", f.in_train)
           << "\n";
  }
  for (size_t i = 0; i < facts.size() && i < 8 * 4; i += 4) prompts << facts[i].prompt << "\n";
  for (size_t i = 1; i < facts.size() && i < 8 * 4; i += 4) questions << facts[i].question << "\n";
  if (!knowledge || !recall || !prompts || !questions) throw UserError(out_dir + ": cannot write synthetic data");
  // Drawn last, so that the files above stay what they were before chat data existed.
  write_conversations(dir + "chat_train.jsonl", train_pool, o.chat_documents, rng);
  write_conversations(dir + "chat_val.jsonl", train_pool, std::max<int64_t>(1, o.chat_documents / 10), rng);
  write_fact_choices(dir + "fact_choices.jsonl", facts, o.seed);

  // A byte-level BPE tokenizer of the corpus with MiniMind's special tokens: what chat
  // data (and so pretraining that SFT continues) needs.
  BpeTrainingOptions tokenizer;
  tokenizer.corpus = {dir + "train.jsonl", dir + "chat_train.jsonl"};
  tokenizer.vocab_size = o.tokenizer_vocab_size;
  tokenizer.special = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};
  std::ostringstream quiet;
  write_tokenizer_files(train_bpe(tokenizer, quiet), dir + "tokenizer");

  summary.facts = static_cast<int64_t>(facts.size());
  summary.train_documents = o.train_documents;
  summary.val_documents = o.val_documents;
  return summary;
}

}  // namespace xlhost::core
