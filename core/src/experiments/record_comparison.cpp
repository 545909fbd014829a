#include "xlhost/core/experiments/record_comparison.hpp"

#include <rapidjson/document.h>
#include <rapidjson/pointer.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <optional>
#include <set>

#include "xlhost/core/experiments/experiment_record.hpp"
#include "xlhost/core/run/run_directory.hpp"
#include "xlhost/core/util/json.hpp"
#include "xlhost/core/util/error.hpp"
#include "xlhost/core/util/progress.hpp"

namespace xlhost::core {

namespace {

// "section.key" → the value as JSON text, for every leaf of the resolved config.
void flatten(const rapidjson::Value& v, const std::string& prefix, std::map<std::string, std::string>& out) {
  if (v.IsObject()) {
    for (const auto& m : v.GetObject())
      flatten(m.value, prefix.empty() ? m.name.GetString() : prefix + "." + m.name.GetString(), out);
    return;
  }
  if (v.IsString()) {
    out[prefix] = v.GetString();
    return;
  }
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> w(buffer);
  v.Accept(w);
  out[prefix] = buffer.GetString();
}

struct Metric {
  const char* key;  // path below "results", as a JSON pointer
  const char* label;
  int digits;
  int better;  // -1 lower is better, +1 higher is better, 0 not ranked
  double scale = 1;
};

const Metric kMetrics[] = {
    {"steps", "steps", 0, 0},
    {"parameters", "parameters", 0, 0},
    {"parameters_receiving_gradient", "  receiving gradient", 0, 0},
    {"skipped_steps", "skipped steps", 0, 0},
    {"final_loss", "final train loss", 4, -1},
    {"final_aux_loss", "plugin aux loss (apart)", 4, 0},
    {"best_loss", "best train loss", 4, -1},
    {"val_loss", "val loss", 4, -1},
    {"val_perplexity", "val perplexity", 3, -1},
    {"fact_recall", "fact recall %", 1, +1, 100},
    {"fact_recall_seen", "  facts in training text %", 1, +1, 100},
    {"fact_recall_unseen", "  facts only in knowledge %", 1, +1, 100},
    {"generation/distinct_1", "samples distinct-1", 3, +1},
    {"generation/distinct_2", "samples distinct-2", 3, +1},
    {"generation/repetition_4", "samples repetition (4-grams)", 3, -1},
    {"generation/eos_rate", "samples EOS rate %", 1, 0, 100},
    {"generation/mean_new_tokens", "samples mean length", 1, 0},
    {"generation/reference_perplexity", "samples ppl (reference run)", 2, -1},
    {"tokens_per_second", "tokens/s", 0, +1},
    {"flops_per_token", "MFLOP/token (training)", 2, 0, 1e-6},
    {"achieved_flops", "GFLOP/s achieved", 2, 0, 1e-9},
    {"step_time/step_s", "s/step", 3, -1},
    {"wall_seconds", "wall s", 1, -1},
    {"peak_rss_bytes", "peak RSS MiB", 0, -1, 1.0 / (1 << 20)},
    {"peak_cuda_bytes", "peak CUDA MiB", 0, -1, 1.0 / (1 << 20)},
};

// A row of figures with the best marked: only when it beats every other run by more than
// their spreads together (a tie, or a single run, has no best).
ComparisonRow ranked_row(const std::string& label, int digits, int better, const std::vector<std::optional<double>>& values,
                         const std::vector<std::optional<double>>& spreads) {
  ComparisonRow row{label, {}, -1};
  auto spread = [&](size_t i) { return spreads[i].value_or(0.0); };
  for (size_t i = 0; i < values.size(); ++i) {
    const bool spread_shown = spread(i) > 0;  // steps and parameter counts do not vary
    row.values.push_back(!values[i] ? "-"
                                    : format_fixed(*values[i], digits) +
                                          (spread_shown ? " ± " + format_fixed(spread(i), digits) : ""));
    if (values[i] && better != 0 &&
        (row.best < 0 || (better < 0 ? *values[i] < *values[row.best] : *values[i] > *values[row.best])))
      row.best = static_cast<int>(i);
  }
  if (std::all_of(row.values.begin(), row.values.end(), [&](auto& v) { return v == row.values[0]; })) row.best = -1;
  for (size_t i = 0; row.best >= 0 && i < values.size(); ++i)
    if (static_cast<int>(i) != row.best && values[i] &&
        std::abs(*values[i] - *values[row.best]) <= spread(i) + spread(row.best) && spread(i) + spread(row.best) > 0)
      row.best = -1;
  return row;
}

// Benchmarks scored with `xlhost eval --task` (<run>/benchmarks.json): a row per task and figure.
void add_benchmark_rows(const std::vector<std::filesystem::path>& run_dirs, RecordComparison& c) {
  const auto& ids = c.ids;
  std::vector<rapidjson::Document> scored(ids.size());
  std::set<std::string> tasks;
  for (size_t i = 0; i < ids.size(); ++i) {
    const RunDirectory run(run_dirs[i]);
    const auto text = run.read(run.benchmarks(), "benchmarks", kMaxRecordBytes);
    if (!text) continue;
    scored[i] = parse_json(*text, run.benchmarks().string());
    if (!scored[i].IsObject()) throw UserError(run.benchmarks().string() + ": expected a JSON object");
    for (const auto& m : scored[i].GetObject()) tasks.insert(m.name.GetString());
  }
  const Metric figures[] = {{"acc", "acc %", 1, +1, 100},
                            {"acc_norm", "acc_norm %", 1, +1, 100},
                            {"word_perplexity", "word perplexity", 3, -1},
                            {"bits_per_byte", "bits per byte", 4, -1}};
  for (const auto& task : tasks)
    for (const auto& f : figures) {
      std::vector<std::optional<double>> values, spreads(ids.size());
      for (const auto& doc : scored) {
        const bool has = doc.IsObject() && doc.HasMember(task.c_str()) && doc[task.c_str()].IsObject();
        const double v = has ? member_number(doc[task.c_str()], f.key) : std::nan("");
        values.push_back(std::isfinite(v) ? std::optional<double>(v * f.scale) : std::nullopt);
      }
      if (std::any_of(values.begin(), values.end(), [](const auto& v) { return v.has_value(); }))
        c.results.push_back(ranked_row(task + " " + f.label, f.digits, f.better, values, spreads));
    }
}

}  // namespace

RecordComparison compare_records(const std::string& out_dir, const std::vector<std::string>& ids) {
  std::vector<std::filesystem::path> run_dirs;
  for (const auto& id : ids) run_dirs.push_back(RunDirectory(out_dir, id).root());
  return compare_runs(run_dirs, ids);
}

RecordComparison compare_runs(const std::vector<std::filesystem::path>& run_dirs, std::vector<std::string> labels) {
  if (run_dirs.empty()) throw UserError("exp compare needs at least one experiment id");
  RecordComparison c;
  if (labels.empty())
    for (const auto& dir : run_dirs) labels.push_back(dir.filename().string());
  c.ids = std::move(labels);
  const auto& ids = c.ids;
  std::vector<std::map<std::string, std::string>> configs(ids.size());
  std::vector<rapidjson::Document> records;
  for (size_t i = 0; i < ids.size(); ++i) {
    records.push_back(read_record(run_dirs[i].parent_path().string(), run_dirs[i].filename().string()));
    const auto& r = records.back();
    flatten(r["hyperparameters"], "", configs[i]);
    configs[i].erase("experiment.id");  // the column header already
    configs[i]["(folder)"] = run_dirs[i].parent_path().string();  // shown when runs come from several
    const auto& v = r["versions"];
    if (v.HasMember("plugin"))
      configs[i]["(plugin)"] = member_string(v["plugin"], "name") + " " + member_string(v["plugin"], "version");
    if (v.HasMember("git")) {
      const auto& git = v["git"];
      const bool dirty = git.IsObject() && git.HasMember("dirty") && git["dirty"].IsBool() && git["dirty"].GetBool();
      configs[i]["(code)"] = member_string(git, "short_commit") + (dirty ? "+dirty" : "");
    }
  }
  std::map<std::string, bool> keys;
  for (const auto& config : configs)
    for (const auto& [k, value] : config) keys[k] = true;
  for (const auto& [key, unused] : keys) {
    ComparisonRow row{key, {}, -1};
    for (const auto& config : configs) {
      auto it = config.find(key);
      row.values.push_back(it == config.end() ? "-" : it->second);
    }
    if (std::any_of(row.values.begin(), row.values.end(), [&](auto& v) { return v != row.values[0]; }))
      c.differences.push_back(row);
  }

  ComparisonRow status{"status", {}, -1};
  for (const auto& r : records) status.values.push_back(r["status"].GetString());
  c.results.push_back(status);
  ComparisonRow seeds{"seeds", {}, -1};
  for (const auto& r : records)
    seeds.values.push_back(r.HasMember("seeds") && r["seeds"].IsArray() ? std::to_string(r["seeds"].Size()) : "1");
  c.results.push_back(seeds);
  for (const auto& m : kMetrics) {
    std::vector<std::optional<double>> values, spreads;
    for (const auto& record : records) {
      auto number_at = [&](const char* part) -> std::optional<double> {
        const auto* v = rapidjson::Pointer((std::string("/") + part + "/" + m.key).c_str()).Get(record);
        if (!v || !v->IsNumber()) return std::nullopt;
        return v->GetDouble() * m.scale;
      };
      values.push_back(number_at("results"));
      spreads.push_back(number_at("results_std"));  // runs with --seeds: mean ± standard deviation
    }
    const bool optional = std::string(m.key).rfind("generation/", 0) == 0;  // runs without samples have none
    if (optional && std::none_of(values.begin(), values.end(), [](const auto& v) { return v.has_value(); })) continue;
    c.results.push_back(ranked_row(m.label, m.digits, m.better, values, spreads));
  }
  add_benchmark_rows(run_dirs, c);
  return c;
}

std::string format_comparison(const RecordComparison& c, bool markdown) {
  std::vector<const ComparisonRow*> rows;
  for (const auto& r : c.differences) rows.push_back(&r);
  const size_t first_result = rows.size();
  for (const auto& r : c.results) rows.push_back(&r);
  auto cell = [&](const ComparisonRow& row, size_t i) {
    std::string v = row.values[i];
    if (!markdown && v.size() > 32)  // long descriptions; a path keeps its end, where paths differ
      v = v[0] == '/' ? "..." + v.substr(v.size() - 29) : v.substr(0, 29) + "...";
    if (static_cast<int>(i) != row.best) return v;
    return markdown ? "**" + v + "**" : v + " *";
  };
  std::string out;
  if (markdown) {
    out += "| |";
    for (const auto& id : c.ids) out += " " + id + " |";
    out += "\n| --- |";
    for (size_t i = 0; i < c.ids.size(); ++i) out += " ---: |";
    out += "\n";
    for (size_t r = 0; r < rows.size(); ++r) {
      if (r == first_result && first_result > 0) {
        out += "| *results* |";
        for (size_t i = 0; i < c.ids.size(); ++i) out += " |";
        out += "\n";
      }
      out += "| " + rows[r]->name + " |";
      for (size_t i = 0; i < c.ids.size(); ++i) {
        out += ' ';
        out += cell(*rows[r], i);
        out += " |";
      }
      out += "\n";
    }
    return out;
  }
  size_t name_width = 7;
  for (const auto* r : rows) name_width = std::max(name_width, r->name.size());
  std::vector<size_t> width(c.ids.size());
  for (size_t i = 0; i < c.ids.size(); ++i) {
    width[i] = c.ids[i].size();
    for (const auto* r : rows) width[i] = std::max(width[i], cell(*r, i).size());
  }
  auto line = [&](const std::string& name, auto value_of) {
    std::string text = name + std::string(name_width + 2 - name.size(), ' ');
    for (size_t i = 0; i < c.ids.size(); ++i) {
      const std::string v = value_of(i);
      text += std::string(width[i] - std::min(width[i], v.size()) + 2, ' ') + v;
    }
    return text + "\n";
  };
  out += line("", [&](size_t i) { return c.ids[i]; });
  out += c.differences.empty() ? "(same configuration, plugin and code)\n" : "differences:\n";
  for (size_t r = 0; r < rows.size(); ++r) {
    if (r == first_result) out += "results (* best):\n";
    out += line(rows[r]->name, [&](size_t i) { return cell(*rows[r], i); });
  }
  return out;
}

}  // namespace xlhost::core
