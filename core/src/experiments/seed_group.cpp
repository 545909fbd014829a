#include "xlhost/core/experiments/seed_group.hpp"


#include <rapidjson/document.h>
#include <rapidjson/prettywriter.h>
#include <rapidjson/stringbuffer.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <numeric>

#include "xlhost/core/run/run_directory.hpp"
#include "xlhost/core/util/error.hpp"
#include "xlhost/core/util/file_io.hpp"
#include "xlhost/core/util/json.hpp"

namespace xlhost::core {

namespace fs = std::filesystem;

std::string seed_run_id(const std::string& id, long long seed) { return id + "-seed" + std::to_string(seed); }

namespace {

using Allocator = rapidjson::Document::AllocatorType;

// Mean and sample standard deviation of every number found at the same place in each
// run's results (nested objects such as step_time included). A place where some run has
// no number (a run without val data) gets null.
void summarise(const std::vector<const rapidjson::Value*>& results, rapidjson::Value& mean, rapidjson::Value& spread,
               Allocator& a) {
  mean.SetObject(), spread.SetObject();
  for (const auto& member : results[0]->GetObject()) {
    const char* key = member.name.GetString();
    rapidjson::Value name(key, a), name2(key, a);
    if (member.value.IsObject()) {
      std::vector<const rapidjson::Value*> inner;
      for (const auto* r : results)
        if (r->HasMember(key) && (*r)[key].IsObject()) inner.push_back(&(*r)[key]);
      if (inner.size() != results.size()) continue;
      rapidjson::Value m, s;
      summarise(inner, m, s, a);
      mean.AddMember(name, m, a), spread.AddMember(name2, s, a);
      continue;
    }
    if (!member.value.IsNumber()) {  // strings, arrays: the first run's, no spread
      mean.AddMember(name, rapidjson::Value(member.value, a), a);
      continue;
    }
    std::vector<double> xs;
    for (const auto* r : results)
      if (r->HasMember(key) && (*r)[key].IsNumber()) xs.push_back((*r)[key].GetDouble());
    if (xs.size() != results.size()) {
      mean.AddMember(name, rapidjson::Value(), a), spread.AddMember(name2, rapidjson::Value(), a);
      continue;
    }
    double sum = 0;
    for (double x : xs) sum += x;
    const double mu = sum / static_cast<double>(xs.size());
    double squares = 0;
    for (double x : xs) squares += (x - mu) * (x - mu);
    const double sd = xs.size() > 1 ? std::sqrt(squares / static_cast<double>(xs.size() - 1)) : 0.0;
    mean.AddMember(name, rapidjson::Value(mu), a);
    spread.AddMember(name2, rapidjson::Value(sd), a);
  }
}

}  // namespace

void write_seed_group_record(const std::string& group_dir, const std::string& id, const std::vector<std::string>& run_dirs,
                             const std::vector<long long>& seeds, const std::string& command_line) {
  if (run_dirs.empty()) throw UserError("seed group " + id + ": no runs");
  std::vector<rapidjson::Document> records;
  for (const auto& dir : run_dirs) {
    const auto path = RunDirectory(dir).record().string();
    records.push_back(parse_json(read_text_file(path, "record"), path));
    if (!records.back().IsObject() || !records.back().HasMember("status"))
      throw UserError(path + ": not a run record");
  }
  rapidjson::Document doc;
  doc.CopyFrom(records.front(), doc.GetAllocator());
  auto& a = doc.GetAllocator();
  std::string status = "completed";
  std::vector<const rapidjson::Value*> results;
  for (const auto& r : records) {
    const std::string s = r["status"].IsString() ? r["status"].GetString() : "failed";
    if (s == "failed" || (s != "completed" && status == "completed")) status = s;
    if (r.HasMember("results") && r["results"].IsObject()) results.push_back(&r["results"]);
  }
  doc["status"].SetString(status.c_str(), a);
  auto& experiment = doc["experiment"];
  experiment["id"].SetString(id.c_str(), a);
  if (records.back()["experiment"].HasMember("end_time"))
    experiment["end_time"].CopyFrom(records.back()["experiment"]["end_time"], a);
  experiment["command_line"].SetString(command_line.c_str(), a);
  // The group's config is the first seed's with the group's id and folder (train.seed: the first seed).
  auto& config = doc["hyperparameters"];
  if (config.IsObject() && config.HasMember("experiment") && config["experiment"].HasMember("id"))
    config["experiment"]["id"].SetString(id.c_str(), a);
  if (config.IsObject() && config.HasMember("run") && config["run"].HasMember("out_dir"))
    config["run"]["out_dir"].SetString(fs::path(group_dir).parent_path().string().c_str(), a);
  rapidjson::Value seed_list(rapidjson::kArrayType), runs(rapidjson::kArrayType);
  for (long long s : seeds) seed_list.PushBack(static_cast<int64_t>(s), a);
  for (const auto& dir : run_dirs) runs.PushBack(rapidjson::Value(fs::relative(dir, group_dir).string().c_str(), a), a);
  doc.AddMember("seeds", seed_list, a);
  doc.AddMember("runs", runs, a);
  rapidjson::Value mean, spread;
  if (results.size() == records.size()) {
    summarise(results, mean, spread, a);
  }
  doc["results"] = mean;  // null unless every seed has results
  doc.AddMember("results_std", spread, a);
  if (doc.HasMember("reproduce") && doc["reproduce"].HasMember("command"))
    doc["reproduce"]["command"].SetString(command_line.c_str(), a);
  rapidjson::StringBuffer buffer;
  rapidjson::PrettyWriter<rapidjson::StringBuffer> w(buffer);
  w.SetIndent(' ', 2);
  doc.Accept(w);
  ensure_directory(group_dir, "seed group");
  write_file_atomically(RunDirectory(group_dir).record().string(), std::string(buffer.GetString()) + "\n");
}

namespace {

// The mean of `records` (the same step of every seed), figure by figure.
StepRecord mean_step(const std::vector<const StepRecord*>& records) {
  StepRecord m = *records.front();
  const double n = static_cast<double>(records.size());
  auto mean = [&](auto field) {
    double sum = 0;
    for (const auto* r : records) sum += r->*field;
    return sum / n;
  };
  m.loss = mean(&StepRecord::loss), m.lr = mean(&StepRecord::lr), m.grad_norm = mean(&StepRecord::grad_norm);
  m.tokens_per_second = mean(&StepRecord::tokens_per_second), m.aux_loss = mean(&StepRecord::aux_loss);
  for (auto& [name, value] : m.diagnostics) {
    double sum = 0, counted = 0;
    for (const auto* r : records)
      for (const auto& [n2, v] : r->diagnostics)
        if (n2 == name) sum += v, ++counted;
    value = counted ? sum / counted : std::nan("");
  }
  return m;
}

}  // namespace

std::optional<SeedGroupLog> read_seed_group_log(const std::filesystem::path& group_dir) {
  SeedGroupLog out;
  std::vector<TrainLogContents> logs;
  for (const auto& dir : RunDirectory::run_folders_in(RunDirectory(group_dir).seeds())) {
    const RunDirectory seed(dir);
    const auto path = seed.resolve(seed.train_log(), "train.log", kMaxTrainLogBytes);
    if (!path) continue;
    logs.push_back(read_train_log(*path));
    out.seeds.push_back(dir.filename().string());
  }
  if (logs.empty()) return std::nullopt;
  std::map<int64_t, std::vector<const StepRecord*>> steps;
  std::map<int64_t, std::vector<double>> evals;
  for (const auto& log : logs) {
    for (const auto& s : log.steps) steps[s.step].push_back(&s);
    for (const auto& e : log.evals) evals[e.step].push_back(e.val_loss);
  }
  for (const auto& [step, records] : steps) {
    if (records.size() != logs.size()) continue;  // a step not every seed has logged (yet)
    out.mean.steps.push_back(mean_step(records));
    const auto [low, high] = std::minmax_element(records.begin(), records.end(),
                                                 [](const auto* a, const auto* b) { return a->loss < b->loss; });
    out.loss_band[step] = {(*low)->loss, (*high)->loss};
  }
  for (const auto& [step, losses] : evals)
    if (losses.size() == logs.size())
      {
      const double mean = std::accumulate(losses.begin(), losses.end(), 0.0) / static_cast<double>(losses.size());
      out.mean.evals.push_back({step, mean, std::exp(mean)});
    }
  return out;
}

}  // namespace xlhost::core
