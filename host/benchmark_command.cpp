// `xlhost eval RUN --task FILE`: multiple-choice and rolling log-likelihood benchmarks from
// local files, scored as lm-evaluation-harness scores them, with the items' contamination
// by the run's training data and knowledge file; kept in <run>/benchmarks.json.
#include <rapidjson/document.h>

#include <filesystem>
#include <iomanip>
#include <iostream>
#include <optional>

#include "benchmark_command.hpp"
#include "xlhost/core/data/contamination.hpp"
#include "xlhost/core/eval/benchmark.hpp"
#include "xlhost/core/run/run_directory.hpp"
#include "xlhost/core/util/error.hpp"
#include "xlhost/core/util/file_io.hpp"
#include "xlhost/core/util/json.hpp"
#include "xlhost/core/util/json_writer.hpp"
#include "xlhost/core/util/progress.hpp"

namespace xlhost::host {

namespace {

struct Contamination {
  std::string source;  // "train" or "knowledge"
  std::string path;
  int64_t items = 0, hits = 0;
};

// The items found word for word in the run's training data and knowledge file.
std::vector<Contamination> contamination_of(const core::TaskFile& task, int64_t limit, const core::RunConfig& config) {
  std::vector<Contamination> out;
  const auto texts = core::item_texts(task, limit);
  const std::pair<const char*, std::string> sources[] = {{"train", config.options.data.train_path},
                                                         {"knowledge", config.options.data.knowledge_path}};
  for (const auto& [name, path] : sources) {
    if (path.empty() || !std::filesystem::is_regular_file(path)) continue;
    core::NgramOverlap overlap(texts);
    core::for_each_document(path, [&](const std::string& document) { overlap.scan(document); });
    out.push_back({name, path, static_cast<int64_t>(texts.size()), overlap.count()});
  }
  return out;
}

void write_accuracy(core::JsonWriter& w, const core::Accuracy& a) {
  w.Key("items"), w.Int64(a.items);
  core::write_number(w, "acc", a.acc);
  core::write_number(w, "acc_stderr", a.acc_stderr);
  core::write_number(w, "acc_norm", a.acc_norm);
  core::write_number(w, "acc_bytes", a.acc_bytes);
}

struct TaskResult {
  const core::TaskFile* task = nullptr;
  core::BenchmarkOptions options;
  std::optional<core::MultipleChoiceScore> choices;
  std::optional<core::RollingScore> rolling;
  std::vector<Contamination> contamination;
};

// One task's entry of benchmarks.json.
void write_result(core::JsonWriter& w, const TaskResult& r, const std::string& checkpoint) {
  w.StartObject();
  core::write_string(w, "path", std::filesystem::absolute(r.task->path).string());
  core::write_string(w, "checksum", r.task->checksum);
  core::write_string(w, "format", r.task->format);
  core::write_string(w, "checkpoint", checkpoint);
  w.Key("num_fewshot"), w.Int64(r.options.num_fewshot);
  w.Key("fewshot_seed"), w.Uint64(r.options.fewshot_seed);
  w.Key("max_length"), w.Int64(r.options.max_length);
  if (r.choices) {
    write_accuracy(w, r.choices->all);
    w.Key("groups"), w.StartObject();
    for (const auto& [name, a] : r.choices->groups) {
      w.Key(name.c_str()), w.StartObject();
      write_accuracy(w, a);
      w.EndObject();
    }
    w.EndObject();
  }
  if (r.rolling) {
    w.Key("documents"), w.Int64(r.rolling->documents);
    w.Key("tokens"), w.Int64(r.rolling->tokens);
    core::write_number(w, "word_perplexity", r.rolling->word_perplexity);
    core::write_number(w, "byte_perplexity", r.rolling->byte_perplexity);
    core::write_number(w, "bits_per_byte", r.rolling->bits_per_byte);
  }
  w.Key("contamination"), w.StartObject();
  for (const auto& c : r.contamination) {
    w.Key(c.source.c_str()), w.StartObject();
    core::write_string(w, "path", c.path);
    w.Key("items"), w.Int64(c.items);
    w.Key("contaminated"), w.Int64(c.hits);
    w.EndObject();
  }
  w.EndObject();
  w.EndObject();
}

// <run>/benchmarks.json: {"<task file name>": result, ...}; a task scored again replaces its entry.
void record_result(const std::string& checkpoint, const TaskResult& r) {
  const auto run_dir = std::filesystem::absolute(checkpoint).parent_path().parent_path();
  core::RunDirectory run(run_dir);
  if (!std::filesystem::exists(run.record())) return;  // a checkpoint outside a run folder
  rapidjson::Document doc;
  doc.SetObject();
  if (const auto text = run.read(run.benchmarks(), "benchmarks", size_t{16} << 20))
    doc = core::parse_json(*text, run.benchmarks().string());
  const std::string name = std::filesystem::path(r.task->path).filename().string();
  const auto entry = core::write_json([&](core::JsonWriter& w) { write_result(w, r, checkpoint); });
  const auto json = core::write_json([&](core::JsonWriter& w) {
    w.StartObject();
    for (const auto& m : doc.GetObject()) {
      if (name == m.name.GetString()) continue;
      w.Key(m.name.GetString()), m.value.Accept(w);
    }
    w.Key(name.c_str()), w.RawValue(entry.c_str(), entry.size(), rapidjson::kObjectType);
    w.EndObject();
  });
  core::write_file_atomically(run.benchmarks().string(), json + "\n");
  std::cout << "written to " << run.benchmarks().string() << "\n";
}

// --samples FILE: one JSON line per item, what lm-eval's --log_samples holds.
void write_samples(const std::string& path, const core::MultipleChoiceScore& score, const core::TaskFile& task) {
  std::string lines;
  for (size_t i = 0; i < score.items.size(); ++i) {
    const auto& s = score.items[i];
    lines += core::write_json([&](core::JsonWriter& w) {
      w.StartObject();
      w.Key("index"), w.Uint64(i);
      w.Key("gold"), w.Int64(task.items[i].gold);
      w.Key("predicted"), w.Int64(s.predicted);
      w.Key("predicted_norm"), w.Int64(s.predicted_norm);
      w.Key("loglikelihoods"), w.StartArray();
      for (const auto& c : s.choices) w.Double(c.logprob);
      w.EndArray();
      w.Key("greedy"), w.StartArray();
      for (const auto& c : s.choices) w.Bool(c.greedy);
      w.EndArray();
      w.EndObject();
    }) + "\n";
  }
  core::write_file_atomically(path, lines);
}

void print_result(const TaskResult& r) {
  std::cout << "task        " << r.task->path << " (" << r.task->format << ", checksum " << r.task->checksum.substr(0, 12)
            << ")\n";
  auto line = [](const std::string& name, const core::Accuracy& a) {
    std::cout << std::left << std::setw(20) << name << std::right << std::setw(6) << a.items << std::setw(9)
              << core::format_fixed(100 * a.acc, 1) << "% ±" << std::setw(4) << core::format_fixed(100 * a.acc_stderr, 1)
              << std::setw(9) << core::format_fixed(100 * a.acc_norm, 1) << "%" << std::setw(9)
              << core::format_fixed(100 * a.acc_bytes, 1) << "%\n";
  };
  if (r.choices) {
    std::cout << "\n" << std::left << std::setw(20) << "items" << std::right << std::setw(6) << "n" << std::setw(10) << "acc"
              << std::setw(6) << "±" << std::setw(10) << "acc_norm" << std::setw(10) << "acc_bytes" << "\n";
    line("all", r.choices->all);
    for (const auto& [name, a] : r.choices->groups) line(name, a);
  }
  if (r.rolling)
    std::cout << "documents   " << r.rolling->documents << " (" << r.rolling->tokens << " tokens)\nword perplexity "
              << core::format_fixed(r.rolling->word_perplexity, 3) << "\nbyte perplexity "
              << core::format_fixed(r.rolling->byte_perplexity, 4) << "\nbits per byte   "
              << core::format_fixed(r.rolling->bits_per_byte, 4) << "\n";
  for (const auto& c : r.contamination)
    std::cout << "contamination: " << c.hits << " of " << c.items << " items appear word for word in the " << c.source
              << " text (" << c.path << ")\n";
}

}  // namespace

void add_benchmark_options(po::options_description& options) {
  options.add_options()
      ("task", po::value<std::string>(),
       "score a benchmark task file instead: multiple choice (xlhost JSONL, HellaSwag/ARC/PIQA JSONL, C-Eval/CMMLU CSV) "
       "or a text for rolling log-likelihood (.txt, JSONL {\"text\"}); results kept in <run>/benchmarks.json")
      ("task-format", po::value<std::string>()->default_value("auto"), "auto|xlhost|hellaswag|arc|piqa|ceval|text")
      ("num-fewshot", po::value<int64_t>()->default_value(0), "answered examples before each item, drawn from the "
       "file's few-shot pool (lines with \"fewshot\": true)")
      ("fewshot-seed", po::value<uint64_t>()->default_value(1234), "the seed of the few-shot draw")
      ("limit", po::value<int64_t>()->default_value(0), "score only the first N items (0 = all)")
      ("batch-size", po::value<int64_t>()->default_value(16), "sequences of equal length per forward")
      ("max-length", po::value<int64_t>()->default_value(0), "longest input in tokens (default: data.seq_len)")
      ("samples", po::value<std::string>(), "also write one JSON line per item: log-likelihood of each choice, prediction");
}

int benchmark_eval(const po::variables_map& vm, core::TrainedModel& t) {
  const auto task = core::read_task_file(vm["task"].as<std::string>(), vm["task-format"].as<std::string>());
  TaskResult r;
  r.task = &task;
  r.options.num_fewshot = vm["num-fewshot"].as<int64_t>();
  r.options.fewshot_seed = vm["fewshot-seed"].as<uint64_t>();
  r.options.limit = vm["limit"].as<int64_t>();
  r.options.batch_size = vm["batch-size"].as<int64_t>();
  r.options.max_length = vm["max-length"].as<int64_t>();
  if (r.options.max_length <= 0) r.options.max_length = t.config.options.data.seq_len;
  if (r.options.num_fewshot < 0 || r.options.limit < 0 || r.options.batch_size < 1)
    throw core::UserError("--num-fewshot and --limit must be at least 0, --batch-size at least 1");
  if (task.rolling) {
    r.rolling = core::score_rolling(*t.model, *t.tokenizer, task, r.options, t.device);
  } else {
    std::optional<core::ProgressLine> progress;
    r.choices = core::score_multiple_choice(*t.model, *t.tokenizer, task, r.options, t.device,
                                            [&](int64_t done, int64_t total) {
                                              if (!progress) progress.emplace(std::cerr, total, 0);
                                              progress->count(done, "choices scored");
                                            });
    if (progress) progress->finish();
    if (vm.count("samples")) write_samples(vm["samples"].as<std::string>(), *r.choices, task);
  }
  r.contamination = contamination_of(task, r.options.limit, t.config);
  print_result(r);
  record_result(t.checkpoint, r);
  return 0;
}

}  // namespace xlhost::host
