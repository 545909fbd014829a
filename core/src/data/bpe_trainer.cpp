#include "xlhost/core/data/bpe_trainer.hpp"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <ostream>
#include <queue>
#include <unordered_map>
#include <unordered_set>

#include <rapidjson/document.h>

#include "xlhost/core/data/chat.hpp"
#include "xlhost/core/data/json_lines.hpp"
#include "xlhost/core/util/error.hpp"
#include "xlhost/core/util/file_io.hpp"
#include "xlhost/core/util/parallel.hpp"
#include "xlhost/core/util/printable_text.hpp"
#include "xlhost/core/util/progress.hpp"

namespace xlhost::core {

namespace {

using Clock = std::chrono::steady_clock;

int32_t left_of(uint64_t key) { return static_cast<int32_t>(key >> 32); }
int32_t right_of(uint64_t key) { return static_cast<int32_t>(key & 0xFFFFFFFFu); }

using WordCounts = std::unordered_map<std::string, int64_t>;

// Every word of the corpus (special tokens cut out) with its count, one map per thread
// merged at the end.
WordCounts count_words(const BpeTrainingOptions& o, const TextSplitter& splitter, std::ostream& log,
                       BpeTrainingReport& report) {
  const int threads = worker_threads(o.threads);
  std::vector<WordCounts> per_thread(static_cast<size_t>(threads));
  uint64_t total_bytes = 0, done_bytes = 0;
  for (const auto& path : o.corpus) {
    require_regular_file(path, "corpus");
    total_bytes += std::filesystem::file_size(path);
  }
  const auto started = Clock::now();
  ProgressLine progress(log, static_cast<int64_t>(total_bytes), 0);
  auto count_block = [&](std::vector<std::string>& texts) {
    parallel_for(texts.size(), threads, [&](size_t i, int worker) {
      splitter.split(texts[i], [](const AddedToken&) {}, [&](std::string_view w) { ++per_thread[worker][std::string(w)]; });
    });
    for (const auto& t : texts) done_bytes += t.size();
    progress.count(static_cast<int64_t>(done_bytes), "counting words: bytes");
  };
  // Text lines and chat lines (each message's content) alike.
  std::vector<ChatMessage> messages;
  // A line's texts, refused as a whole (and so named by file and line, or skipped with
  // skip_malformed) when one is not valid UTF-8, which the pre-tokenizer cannot split.
  auto read_texts = [&](const rapidjson::Value& line, std::vector<std::string>& texts) -> std::string {
    std::vector<std::string> found;
    std::string text;
    if (read_text_field(line, text).empty()) {
      found.push_back(std::move(text));
    } else if (line.HasMember("conversations")) {
      if (auto problem = read_conversation(line, messages); !problem.empty()) return problem;
      for (auto& m : messages) found.push_back(std::move(m.content));
    } else {
      return "expected a string field \"text\" or a \"conversations\" array";
    }
    for (const auto& t : found)
      if (const size_t at = first_invalid_utf8(t); at != std::string::npos)
        return "text is not valid UTF-8 (at byte " + std::to_string(at) + " of the text)";
    for (auto& t : found) texts.push_back(std::move(t));
    return "";
  };
  for (const auto& path : o.corpus) {
    auto lines = read_json_object_blocks<std::string>(path, o.skip_malformed, 8u << 20, read_texts, count_block);
    report.documents += lines.documents;
    for (const auto& p : lines.first_problems) log << "skipped " << p << "\n";
  }
  progress.finish();
  report.bytes = done_bytes;
  WordCounts words = std::move(per_thread[0]);
  for (size_t t = 1; t < per_thread.size(); ++t)
    for (auto& [w, c] : per_thread[t]) words[w] += c;
  report.distinct_words = words.size();
  report.count_seconds = seconds_since(started);
  return words;
}

struct Word {
  std::vector<int32_t> symbols;
  int64_t count;
};

// Pair counts over all words (weighted by word count) and the words each pair occurs in.
class PairIndex {
 public:
  std::unordered_map<uint64_t, int64_t> counts;
  std::unordered_map<uint64_t, std::unordered_set<int32_t>> where;

  // The index of all words, counted by `threads` threads over slices of the words and merged.
  static PairIndex of(const std::vector<Word>& words, int threads) {
    const size_t slices = static_cast<size_t>(threads) * 4;
    std::vector<PairIndex> partial(slices);
    parallel_for(slices, threads, [&](size_t s, int) {
      for (size_t i = s * words.size() / slices; i < (s + 1) * words.size() / slices; ++i)
        partial[s].add(words[i], static_cast<int32_t>(i), +1, nullptr);
    });
    PairIndex index = std::move(partial[0]);
    for (size_t s = 1; s < slices; ++s) {
      for (const auto& [key, count] : partial[s].counts) index.counts[key] += count;
      for (auto& [key, in] : partial[s].where) index.where[key].insert(in.begin(), in.end());
    }
    return index;
  }

  void add(const Word& w, int32_t index, int64_t sign, std::unordered_set<uint64_t>* changed) {
    for (size_t i = 0; i + 1 < w.symbols.size(); ++i) {
      const uint64_t key = bpe_pair_key(w.symbols[i], w.symbols[i + 1]);
      counts[key] += sign * w.count;
      if (sign > 0) where[key].insert(index);
      if (changed) changed->insert(key);
    }
  }
};

struct Candidate {
  int64_t count;
  uint64_t pair;
  bool operator<(const Candidate& o) const { return count != o.count ? count < o.count : pair > o.pair; }
};

void merge_in(Word& w, int32_t a, int32_t b, int32_t merged) {
  std::vector<int32_t> out;
  out.reserve(w.symbols.size());
  for (size_t i = 0; i < w.symbols.size(); ++i) {
    if (i + 1 < w.symbols.size() && w.symbols[i] == a && w.symbols[i + 1] == b) {
      out.push_back(merged);
      ++i;
    } else {
      out.push_back(w.symbols[i]);
    }
  }
  w.symbols = std::move(out);
}

}  // namespace

BpeDefinition train_bpe(const BpeTrainingOptions& o, std::ostream& log, BpeTrainingReport* report_out) {
  if (o.corpus.empty()) throw UserError("tokenizer train: no corpus files (--corpus a.jsonl [b.jsonl ...])");
  const int64_t base = static_cast<int64_t>(o.special.size()) + 256;
  if (o.vocab_size < base)
    throw UserError("tokenizer train: --vocab-size " + std::to_string(o.vocab_size) + " is smaller than the " +
                    std::to_string(o.special.size()) + " special tokens and 256 bytes (" + std::to_string(base) + ")");
  BpeDefinition d;
  std::unordered_map<std::string, int32_t> ids;
  for (const auto& s : o.special) {
    if (s.empty()) throw UserError("tokenizer train: an empty special token");
    if (ids.count(s)) throw UserError("tokenizer train: special token \"" + s + "\" given twice");
    ids[s] = static_cast<int32_t>(d.vocab.size());
    d.added.push_back({s, static_cast<int64_t>(d.vocab.size()), true});
    d.vocab.push_back(s);
  }
  for (int b = 0; b < 256; ++b) {
    const std::string& c = byte_level_char(static_cast<uint8_t>(b));
    if (ids.count(c)) throw UserError("tokenizer train: special token \"" + c + "\" is a byte character");
    ids[c] = static_cast<int32_t>(d.vocab.size());
    d.vocab.push_back(c);
  }
  PreTokenizerStep step;
  step.add_prefix_space = o.add_prefix_space;
  d.pre_tokenizer = {step};
  auto has = [&](const char* s) { return std::find(o.special.begin(), o.special.end(), s) != o.special.end(); };
  const std::string first = o.special.empty() ? "" : o.special.front();
  d.bos = has("<|im_start|>") ? "<|im_start|>" : first;
  d.eos = has("<|im_end|>") ? "<|im_end|>" : first;
  d.pad = has("<|endoftext|>") ? "<|endoftext|>" : first;
  if (first.empty()) throw UserError("tokenizer train: give at least one special token (--special \"<|endoftext|>\")");

  BpeTrainingReport report;
  const TextSplitter splitter(d.added, d.pre_tokenizer);
  WordCounts counted = count_words(o, splitter, log, report);
  // Sorted so that word indexes, and with them everything after, do not depend on hashing.
  std::vector<std::pair<std::string, int64_t>> sorted(counted.begin(), counted.end());
  counted.clear();
  std::sort(sorted.begin(), sorted.end());
  std::vector<Word> words;
  words.reserve(sorted.size());
  for (auto& [text, count] : sorted) {
    Word w{{}, count};
    for (unsigned char c : text) w.symbols.push_back(static_cast<int32_t>(o.special.size()) + c);
    words.push_back(std::move(w));
  }
  sorted.clear();

  const auto started = Clock::now();
  PairIndex index = PairIndex::of(words, worker_threads(o.threads));
  std::priority_queue<Candidate> queue;
  for (const auto& [key, count] : index.counts) queue.push({count, key});
  const int64_t wanted = o.vocab_size - base;
  ProgressLine progress(log, wanted, 0);
  while (static_cast<int64_t>(d.vocab.size()) < o.vocab_size && !queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    const int64_t current = index.counts[top.pair];
    if (current != top.count) {  // stale: its count changed after it was queued
      if (current > 0) queue.push({current, top.pair});
      continue;
    }
    if (current <= 0) break;
    const int32_t a = left_of(top.pair), b = right_of(top.pair);
    const std::string token = d.vocab[a] + d.vocab[b];
    auto [it, added] = ids.emplace(token, static_cast<int32_t>(d.vocab.size()));
    if (added) d.vocab.push_back(token);
    d.merges.emplace_back(a, b);
    std::unordered_set<uint64_t> changed;
    std::vector<int32_t> affected(index.where[top.pair].begin(), index.where[top.pair].end());
    std::sort(affected.begin(), affected.end());
    for (int32_t w : affected) {
      index.add(words[w], w, -1, &changed);
      merge_in(words[w], a, b, it->second);
      index.add(words[w], w, +1, &changed);
    }
    index.where.erase(top.pair);
    for (uint64_t key : changed)
      if (index.counts[key] > 0) queue.push({index.counts[key], key});
    progress.count(static_cast<int64_t>(d.merges.size()), "merges");
  }
  progress.finish();
  report.merges = d.merges.size();
  report.merge_seconds = seconds_since(started);
  if (report_out) *report_out = report;
  return d;
}

}  // namespace xlhost::core
