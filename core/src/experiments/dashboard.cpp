#include "xlhost/core/experiments/dashboard.hpp"

#include <rapidjson/document.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>

#include "xlhost/core/checkpoint/checkpoint_directory.hpp"
#include "xlhost/core/experiments/experiment_record.hpp"
#include "xlhost/core/experiments/memory_page.hpp"
#include "xlhost/core/experiments/record_comparison.hpp"
#include "xlhost/core/experiments/run_notes.hpp"
#include "xlhost/core/experiments/seed_group.hpp"
#include "xlhost/core/run/run_directory.hpp"
#include "xlhost/core/experiments/train_log.hpp"
#include "xlhost/core/http/http_server.hpp"
#include "xlhost/core/util/error.hpp"
#include "xlhost/core/util/file_io.hpp"
#include "xlhost/core/util/json.hpp"
#include "xlhost/core/util/json_writer.hpp"

namespace xlhost::core {

namespace fs = std::filesystem;

namespace {

constexpr size_t kMaxCurvePoints = 2000;

// One folder name: what the URL may name, nothing that climbs out of the out folder.
bool is_run_id(const std::string& id) {
  if (id.empty() || id == "." || id == ".." || id.size() > 255) return false;
  return std::all_of(id.begin(), id.end(),
                     [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-'; });
}

// The run folder of `id` in the first out folder that has it; a seed's sub-run
// (<group>-seed<N>) inside its group's seeds/ folder.
std::optional<fs::path> run_folder(const Dashboard& d, const std::string& id) {
  std::error_code ec;
  for (const auto& out : d.out_dirs)
    if (fs::is_directory(fs::path(out) / id, ec)) return fs::path(out) / id;
  if (const auto at = id.rfind("-seed"); at != std::string::npos && at > 0)
    for (const auto& out : d.out_dirs)
      if (const auto sub = RunDirectory(fs::path(out) / id.substr(0, at)).seeds() / id; fs::is_directory(sub, ec)) return sub;
  return std::nullopt;
}

// "train.lr" → value, for every scalar of the resolved config.
void flatten(JsonWriter& w, const rapidjson::Value& v, const std::string& prefix) {
  for (const auto& m : v.GetObject()) {
    const std::string key = prefix + m.name.GetString();
    if (m.value.IsObject()) {
      flatten(w, m.value, key + ".");
      continue;
    }
    w.Key(key.c_str());
    if (m.value.IsNumber()) w.Double(m.value.GetDouble());
    else if (m.value.IsBool()) w.Bool(m.value.GetBool());
    else if (m.value.IsString()) w.String(m.value.GetString());
    else w.Null();
  }
}

// A run's entry; a seed group's lists its sub-runs (one level: a sub-run linked back to its
// group must not recurse).
void write_run(JsonWriter& w, const fs::path& dir, bool list_seeds = true) {
  w.StartObject();
  write_string(w, "id", dir.filename().string());
  write_string(w, "dir", dir.string());
  try {
    const auto doc = read_record(dir.parent_path().string(), dir.filename().string());
    const auto summary = summarize_record(doc, dir.string());  // status with dead processes seen as interrupted
    const auto& e = doc["experiment"];
    write_string(w, "status", summary.status);
    write_string(w, "description", member_string(e, "description"));
    write_string(w, "start_time", member_string(e, "start_time"));
    write_string(w, "plugin", summary.plugin);
    write_string(w, "metrics_url", summary.metrics_url);
    const auto& versions = doc["versions"];
    const bool git = versions.HasMember("git") && versions["git"].IsObject();
    write_string(w, "commit", git ? member_string(versions["git"], "short_commit") : "");
    w.Key("dirty"), w.Bool(git && versions["git"].HasMember("dirty") && versions["git"]["dirty"].IsBool() &&
                           versions["git"]["dirty"].GetBool());
    // A running run's table cells: its last logged step until its record has results.
    const auto live = summary.status == "running" ? last_logged_step(RunDirectory(dir).train_log()) : std::nullopt;
    w.Key("live"), w.Bool(live.has_value());
    for (const char* part : {"results", "results_std"}) {  // results_std: a seed group's spread
      w.Key(part), w.StartObject();
      if (live && part == std::string("results")) {
        write_number(w, "steps", static_cast<double>(live->step));
        write_number(w, "final_loss", live->loss);
        write_number(w, "tokens_per_second", live->tokens_per_second);
      } else if (doc.HasMember(part) && doc[part].IsObject())
        for (const char* key : {"steps", "final_loss", "best_loss", "val_loss", "fact_recall", "tokens_per_second",
                                "wall_seconds", "final_aux_loss"})
          write_number(w, key, member_number(doc[part], key));
      w.EndObject();
    }
    const auto notes = read_run_notes(RunDirectory(dir));
    w.Key("tags"), w.StartArray();
    for (const auto& tag : notes.tags) w.String(tag.c_str(), static_cast<rapidjson::SizeType>(tag.size()));
    w.EndArray();
    write_string(w, "note", notes.note);
    w.Key("benchmarks"), w.StartArray();  // xlhost eval --task: "<task file> 43.1%"
    for (const auto& b : summary.benchmarks) w.String(b.c_str());
    w.EndArray();
    w.Key("config"), w.StartObject();
    if (doc.HasMember("hyperparameters") && doc["hyperparameters"].IsObject()) flatten(w, doc["hyperparameters"], "");
    w.EndObject();
    w.Key("seed_runs"), w.StartArray();  // a seed group's sub-runs, the running one included
    if (list_seeds)
      for (const auto& seed : RunDirectory::run_folders_in(RunDirectory(dir).seeds())) write_run(w, seed, false);
    w.EndArray();
  } catch (const UserError& error) {  // listed with its problem, never breaking the page
    write_string(w, "status", "broken");
    write_string(w, "problem", error.what());
  }
  w.EndObject();
}

std::string runs_json(const Dashboard& d) {
  return write_json([&](JsonWriter& w) {
    w.StartObject();
    w.Key("runs"), w.StartArray();
    std::vector<std::string> seen;
    for (const auto& out : d.out_dirs) {
      for (const auto& dir : RunDirectory::run_folders_in(out)) {
        if (std::find(seen.begin(), seen.end(), dir.filename().string()) != seen.end()) continue;
        seen.push_back(dir.filename().string());
        write_run(w, dir);
      }
    }
    w.EndArray();
    w.EndObject();
  });
}

// Every k-th point and the last, so that a long run costs the page 2,000 points at most.
template <typename Item>
std::vector<const Item*> decimate(const std::vector<Item>& items) {
  std::vector<const Item*> kept;
  const size_t stride = std::max<size_t>(1, (items.size() + kMaxCurvePoints - 1) / kMaxCurvePoints);
  for (size_t i = 0; i < items.size(); i += stride) kept.push_back(&items[i]);
  if (!items.empty() && kept.back() != &items.back()) kept.push_back(&items.back());
  return kept;
}

std::string curves_json(const fs::path& dir) {
  const RunDirectory run(dir);
  const auto path = run.resolve(run.train_log(), "train.log", kMaxTrainLogBytes);
  const auto group = path ? std::nullopt : read_seed_group_log(dir);  // a seed group: the mean of its seeds
  const auto log = path ? read_train_log(*path) : group ? group->mean : TrainLogContents{};
  return write_json([&](JsonWriter& w) {
    const auto steps = decimate(log.steps);
    // Training time so far: each logged line's tokens/s covers the tokens since the line
    // before it, so the seconds between lines are their token difference over that rate.
    std::vector<double> elapsed;
    double total = 0;
    int64_t tokens_before = 0;
    size_t next = 0;
    for (const auto& s : log.steps) {
      const double seconds = static_cast<double>(s.tokens_seen - tokens_before) / s.tokens_per_second;
      if (s.tokens_per_second > 0 && std::isfinite(seconds)) total += seconds;  // a mangled rate adds no time
      tokens_before = s.tokens_seen;
      if (next < steps.size() && &s == steps[next]) elapsed.push_back(total), ++next;
    }
    auto column = [&](const char* key, auto value) {
      w.Key(key), w.StartArray();
      for (const auto* s : steps) {
        const double v = value(*s);
        if (std::isfinite(v)) w.Double(v);
        else w.Null();
      }
      w.EndArray();
    };
    w.StartObject();
    column("step", [](const StepRecord& s) { return static_cast<double>(s.step); });
    w.Key("time_s"), w.StartArray();
    for (double t : elapsed) std::isfinite(t) ? w.Double(t) : w.Null();
    w.EndArray();
    column("loss", [](const StepRecord& s) { return s.loss; });
    column("lr", [](const StepRecord& s) { return s.lr; });
    column("grad_norm", [](const StepRecord& s) { return s.grad_norm; });
    column("tokens_per_s", [](const StepRecord& s) { return s.tokens_per_second; });
    column("aux_loss", [](const StepRecord& s) { return s.aux_loss; });
    column("tokens", [](const StepRecord& s) { return static_cast<double>(s.tokens_seen); });
    // The system panels: time per step and in the data loader, CPU, resident and GPU memory.
    column("step_s", [](const StepRecord& s) { return s.step_seconds; });
    column("data_s", [](const StepRecord& s) { return s.data_seconds; });
    column("cpu_percent", [](const StepRecord& s) { return s.cpu_percent; });
    column("rss_mib", [](const StepRecord& s) { return s.rss_mib; });
    // On a GPU. No structured binding: lambdas may not capture one (clang, C++17).
    for (const auto& gpu : {std::pair{"gpu_memory_mib", &StepRecord::gpu_memory_mib},
                            std::pair{"gpu_util_percent", &StepRecord::gpu_util_percent}}) {
      const auto member = gpu.second;
      if (std::any_of(steps.begin(), steps.end(), [&](const StepRecord* s) { return std::isfinite(s->*member); }))
        column(gpu.first, [&](const StepRecord& s) { return s.*member; });
    }
    if (group) {
      column("loss_min", [&](const StepRecord& s) { return group->loss_band.at(s.step).first; });
      column("loss_max", [&](const StepRecord& s) { return group->loss_band.at(s.step).second; });
      w.Key("seeds"), w.StartArray();
      for (const auto& seed : group->seeds) w.String(seed.c_str());
      w.EndArray();
    }
    std::vector<std::string> names;
    for (const auto* s : steps)
      for (const auto& [name, value] : s->diagnostics)
        if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
    w.Key("diagnostics"), w.StartObject();
    for (const auto& name : names)
      column(name.c_str(), [&](const StepRecord& s) {
        for (const auto& [n, v] : s.diagnostics)
          if (n == name) return v;
        return std::nan("");
      });
    w.EndObject();
    w.Key("val_step"), w.StartArray();
    for (const auto& e : log.evals) w.Int64(e.step);
    w.EndArray();
    w.Key("val_loss"), w.StartArray();
    for (const auto& e : log.evals) w.Double(e.val_loss);
    w.EndArray();
    w.EndObject();
  });
}

// The compare view's table: {"ids", "differences": [{"name", "values"}], "results": [... "best"]}.
std::string comparison_json(const RecordComparison& c) {
  return write_json([&](JsonWriter& w) {
    auto strings = [&](const std::vector<std::string>& list) {
      w.StartArray();
      for (const auto& s : list) w.String(s.c_str(), static_cast<rapidjson::SizeType>(s.size()));
      w.EndArray();
    };
    auto rows = [&](const char* key, const std::vector<ComparisonRow>& list) {
      w.Key(key), w.StartArray();
      for (const auto& row : list) {
        w.StartObject();
        write_string(w, "name", row.name);
        w.Key("values"), strings(row.values);
        w.Key("best"), w.Int(row.best);
        w.EndObject();
      }
      w.EndArray();
    };
    w.StartObject();
    w.Key("ids"), strings(c.ids);
    rows("differences", c.differences);
    rows("results", c.results);
    w.EndObject();
  });
}

std::string run_json(const fs::path& dir) {
  const RunDirectory run(dir);
  auto text = [&](const fs::path& p, const char* what, uintmax_t max_bytes) {
    try {
      return run.read(p, what, max_bytes).value_or("");
    } catch (const UserError& e) {  // shown in its place: the page still opens
      return std::string("(not shown: ") + e.what() + ")";
    }
  };
  std::string record_md;
  try {
    const auto doc = read_record(dir.parent_path().string(), dir.filename().string());
    const std::string config_path = doc["experiment"].IsObject() ? member_string(doc["experiment"], "config_path") : "";
    // The run folder's record.md (the plan with this run's results), else the researcher's
    // beside the experiment's config: read only from the project the dashboard serves (its
    // working folder), whatever a record claims.
    record_md = run.read(run.record_markdown(), "record.md", kMaxRecordBytes).value_or("");
    if (record_md.empty() && !config_path.empty())
      record_md = RunDirectory(fs::current_path()).read(record_markdown_beside(config_path), "record.md", kMaxRecordBytes).value_or("");
  } catch (const UserError&) {  // a broken record, or a record.md elsewhere: not shown
  }
  return write_json([&](JsonWriter& w) {
    w.StartObject();
    write_string(w, "id", dir.filename().string());
    write_string(w, "record", text(run.record(), "record", kMaxRecordBytes));
    write_string(w, "record_md", record_md);
    write_string(w, "samples", text(run.samples(), "samples", kMaxSamplesBytes));
    w.Key("checkpoints"), w.StartArray();
    for (const auto& c : list_checkpoints(run.checkpoints())) w.String(c.string().c_str());
    w.EndArray();
    w.EndObject();
  });
}

std::string route(const http::Request& request, const Dashboard& d) {
  const bool head_only = request.head_only();
  const std::string& path = request.path;
  auto query = [&](const char* key) {
    auto it = request.query.find(key);
    return it == request.query.end() ? std::string() : it->second;
  };
  auto json = [&](const std::string& body) { return http::response(200, "application/json", body, head_only); };
  try {
    if (path == "/" || path == "/index.html") {
      std::string page = d.page;
      if (const auto at = page.find("__XLHOST_TOKEN__"); at != std::string::npos) page.replace(at, 16, d.token);
      return http::response(200, "text/html; charset=utf-8", page, head_only);
    }
    if (auto script = d.scripts.find(path); script != d.scripts.end()) {
      if (!fs::exists(script->second))
        return http::response(404, "text/plain", script->second + " is missing: run scripts/setup.sh (Debian's libjs-* packages)\n");
      return http::response(200, "text/javascript", read_text_file(script->second, "script"), head_only);
    }
    if (path == "/api/runs") return json(runs_json(d));
    if (path == "/api/curves" || path == "/api/run" || path == "/api/memory" || path == "/api/inspect") {
      const std::string id = query("id");
      if (!is_run_id(id)) return http::response(400, "text/plain", "id must be one run folder's name\n");
      const auto dir = run_folder(d, id);
      if (!dir) return http::response(404, "text/plain", "no run " + id + "\n");
      if (path == "/api/run") return json(run_json(*dir));
      if (path == "/api/curves") return json(curves_json(*dir));
      if (path == "/api/inspect") {
        if (!d.inspect) return http::response(404, "text/plain", "this server does not inspect models\n");
        return json(d.inspect(*dir, query("prompt")));
      }
      const auto page = memory_page_json(*dir, fs::current_path());
      if (!page) return http::response(404, "text/plain", "run " + id + " has no memory usage (memory_usage.bin)\n");
      return json(*page);
    }
    if (path == "/api/compare") {
      std::vector<std::string> ids;
      const std::string list = query("ids");
      for (size_t start = 0; start < list.size();) {
        const size_t end = std::min(list.find(',', start), list.size());
        ids.push_back(list.substr(start, end - start));
        start = end + 1;
      }
      if (ids.empty() || !std::all_of(ids.begin(), ids.end(), is_run_id))
        return http::response(400, "text/plain", "ids must be run folder names separated by commas\n");
      std::vector<fs::path> dirs;
      for (const auto& id : ids) {  // each from whichever --out folder holds it
        const auto dir = run_folder(d, id);
        if (!dir) return http::response(404, "text/plain", "no run " + id + "\n");
        dirs.push_back(*dir);
      }
      const auto comparison = compare_runs(dirs);
      if (query("format") == "json") return json(comparison_json(comparison));
      return http::response(200, "text/plain; charset=utf-8", format_comparison(comparison, false), head_only);
    }
  } catch (const UserError& e) {  // a file that vanished or broke between listing and reading
    return http::response(404, "text/plain", std::string(e.what()) + "\n", head_only);
  }
  return http::response(404, "text/plain", "not found\n", head_only);
}

// POST /api/notes?id=ID: the run's tags and note, from the page that holds the token.
std::string save_notes(const http::Request& request, const Dashboard& d) {
  const auto token = request.headers.find("x-xlhost-token");
  if (d.token.empty() || token == request.headers.end() || token->second != d.token)
    return http::response(403, "text/plain", "notes are saved only from this server's own page\n");
  const auto id = request.query.count("id") ? request.query.at("id") : std::string();
  if (!is_run_id(id)) return http::response(400, "text/plain", "id must be a run folder name\n");
  const auto dir = run_folder(d, id);
  if (!dir) return http::response(404, "text/plain", "no run " + id + "\n");
  try {
    write_run_notes(RunDirectory(*dir), parse_run_notes(request.body));
  } catch (const UserError& e) {
    return http::response(400, "text/plain", std::string(e.what()) + "\n");
  }
  return http::response(200, "application/json", "{\"saved\": true}\n");
}

}  // namespace

std::string answer_dashboard(const std::string& text, const Dashboard& d) {
  if (const auto request = http::parse_request(text); request && request->method == "POST")
    return request->path == "/api/notes" ? save_notes(*request, d) : http::response(405, "text/plain", "only GET and HEAD\n");
  return http::answer_read_only(text, [&d](const http::Request& request) { return route(request, d); });
}

}  // namespace xlhost::core
