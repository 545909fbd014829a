#include "xlhost/core/experiments/experiment_record.hpp"

#include <rapidjson/document.h>
#include <rapidjson/prettywriter.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <signal.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <iterator>
#include <random>
#include <sstream>
#include <algorithm>
#include <cmath>
#include <thread>

#include "xlhost/core/checkpoint/checkpoint_directory.hpp"
#include "xlhost/core/experiments/git_provenance.hpp"
#include "xlhost/core/run/run_directory.hpp"
#include "xlhost/core/util/error.hpp"
#include "xlhost/core/util/file_io.hpp"
#include "xlhost/core/util/json.hpp"
#include "xlhost/core/util/json_writer.hpp"
#include "xlhost/core/util/md5.hpp"
#include "xlhost/core/util/progress.hpp"

namespace xlhost::core {

namespace fs = std::filesystem;
using Writer = JsonWriter;

std::string hostname() {
  char name[256] = {0};
  gethostname(name, sizeof name - 1);
  return name;
}

std::string new_run_uid() {
  std::random_device entropy;
  std::ostringstream uid;
  uid << std::hex << std::setfill('0') << std::setw(8) << entropy() << std::setw(8) << entropy();
  return uid.str();
}

namespace {

std::string now_iso8601() {
  std::time_t t = std::time(nullptr);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return text;
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown";
}

using DataFiles = std::vector<std::pair<std::string, std::string>>;  // path, md5

// Which code, plugin and data made the run.
void write_versions(Writer& w, const GitState& git, const PluginIdentity& plugin, const DataFiles& data_files) {
  w.StartObject();
  w.Key("git");
  w.StartObject();
  w.Key("found"), w.Bool(git.found);
  write_string(w, "root", git.root);
  write_string(w, "commit", git.commit);
  write_string(w, "short_commit", git.short_commit);
  write_string(w, "branch", git.branch);
  w.Key("dirty"), w.Bool(git.dirty);
  w.Key("dirty_files"), w.StartArray();
  for (const auto& f : git.dirty_files) w.String(f.c_str());
  w.EndArray();
  write_string(w, "diff_patch", git.dirty && !git.diff.empty() ? "diff.patch" : "");
  w.Key("diff_truncated"), w.Bool(git.diff_truncated);
  w.EndObject();
  w.Key("plugin");
  w.StartObject();
  write_string(w, "path", fs::absolute(plugin.path).string());
  write_string(w, "md5", md5_file(plugin.path));
  write_string(w, "name", plugin.name);
  write_string(w, "version", plugin.version);
  w.Key("sdk_abi"), w.Uint(plugin.abi_version);
  write_string(w, "torch_version", plugin.torch_version);
  w.EndObject();
  w.Key("data"), w.StartArray();
  for (const auto& [p, md5] : data_files) {
    w.StartObject();
    write_string(w, "path", p);
    write_string(w, "md5", md5);  // what DVC records for a file (outs[].md5)
    w.Key("bytes"), w.Uint64(fs::file_size(p));
    const fs::path dvc = p + ".dvc";
    if (fs::exists(dvc)) write_string(w, "dvc_file_md5", md5_file(dvc.string()));
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
}

// Where it ran.
void write_environment(Writer& w, const RuntimeInfo& runtime) {
  struct utsname os {};
  uname(&os);
  w.StartObject();
  write_string(w, "libtorch", runtime.libtorch);
  write_string(w, "cuda", runtime.cuda);
  write_string(w, "cudnn", runtime.cudnn);
  write_string(w, "nccl", runtime.nccl);
  w.Key("cuda_available"), w.Bool(!runtime.cuda_devices.empty());
  w.Key("cuda_devices"), w.StartArray();
  for (const auto& name : runtime.cuda_devices) w.String(name.c_str());
  w.EndArray();
  write_string(w, "cpu", cpu_model());
  w.Key("cores"), w.Uint(std::thread::hardware_concurrency());
  write_string(w, "host", hostname());
  write_string(w, "os", std::string(os.sysname) + " " + os.release + " " + os.machine);
  w.EndObject();
}

// How to run it again: the checkout, the data to check, the command.
// The command line without the options that continue an earlier run (--resume [X],
// --rewind-to N): reproducing a run starts from scratch.
std::string command_from_scratch(const std::string& command_line) {
  std::istringstream in(command_line);
  std::vector<std::string> words{std::istream_iterator<std::string>(in), std::istream_iterator<std::string>()};
  std::string out;
  for (size_t i = 0; i < words.size(); ++i) {
    const std::string& w = words[i];
    if (w.rfind("--resume=", 0) == 0 || w.rfind("--rewind-to=", 0) == 0) continue;
    if (w == "--resume" || w == "-r" || w == "--rewind-to") {
      if (i + 1 < words.size() && words[i + 1].rfind("-", 0) != 0) ++i;  // its value
      continue;
    }
    out += (out.empty() ? "" : " ") + w;
  }
  return out;
}

void write_reproduction(Writer& w, const GitState& git, const PluginIdentity& plugin, const DataFiles& data_files,
                        const RunDirectory& run_dir, const std::string& command_line) {
  w.StartObject();
  std::string checkout = git.found && !git.commit.empty() ? "git -C " + git.root + " checkout " + git.commit : "";
  if (git.dirty && !git.diff.empty()) checkout += " && git -C " + git.root + " apply " + fs::absolute(run_dir.diff_patch()).string();
  write_string(w, "checkout", checkout);
  w.Key("data_checks"), w.StartArray();
  for (const auto& [p, md5] : data_files) w.String((md5 + "  " + p).c_str());
  w.EndArray();
  write_string(w, "data_check_command", "md5sum -c <<'EOF' (the lines above)");
  write_string(w, "command", command_from_scratch(command_line));
  write_string(w, "exact_command", "xlhost run --plugin " + fs::absolute(plugin.path).string() + " --config " +
                                       fs::absolute(run_dir.config()).string());
  w.EndObject();
}

// The results object: what the run measured. A resumed run continues the record of the
// segments before it (`previous_record`): their first loss, their wall time added.
rapidjson::Value generation_json(const GenerationQuality& g, rapidjson::Document::AllocatorType& a) {
  rapidjson::Value generation(rapidjson::kObjectType);
  generation.AddMember("samples", g.samples, a);
  for (const auto& [key, value] : {std::pair{"eos_rate", g.eos_rate}, {"mean_new_tokens", g.mean_new_tokens},
                                   {"distinct_1", g.distinct_1}, {"distinct_2", g.distinct_2},
                                   {"repetition_4", g.repetition_4}, {"reference_perplexity", g.reference_perplexity}})
    generation.AddMember(rapidjson::StringRef(key), std::isfinite(value) ? rapidjson::Value(value) : rapidjson::Value(), a);
  if (!g.reference_run.empty())
    generation.AddMember("reference_run", rapidjson::Value(g.reference_run.c_str(), a), a);
  return generation;
}

// Every segment of the run (each resume starts one): its steps, start and end, and the config
// keys it changed. Records written before segments were kept give their last segment only.
rapidjson::Value segment_history(const RunResults& s, const rapidjson::Value* previous, const std::string& start_time,
                                 rapidjson::Document::AllocatorType& a) {
  rapidjson::Value history(rapidjson::kArrayType);
  if (previous && previous->HasMember("segment_history") && (*previous)["segment_history"].IsArray()) {
    for (const auto& segment : (*previous)["segment_history"].GetArray()) history.PushBack(rapidjson::Value(segment, a), a);
  } else if (previous) {
    rapidjson::Value segment(rapidjson::kObjectType);
    for (const char* key : {"first_step", "steps"})
      if (previous->HasMember(key) && (*previous)[key].IsInt64()) segment.AddMember(rapidjson::StringRef(key), (*previous)[key].GetInt64(), a);
    history.PushBack(segment, a);
  }
  auto str = [&](const std::string& v) { return rapidjson::Value(v.c_str(), static_cast<rapidjson::SizeType>(v.size()), a); };
  rapidjson::Value segment(rapidjson::kObjectType);
  segment.AddMember("first_step", s.first_step, a);
  segment.AddMember("steps", s.steps, a);
  segment.AddMember("start_time", str(start_time), a);
  segment.AddMember("end_time", str(now_iso8601()), a);
  rapidjson::Value changes(rapidjson::kArrayType);
  for (const auto& c : s.config_changes) {
    rapidjson::Value change(rapidjson::kObjectType);
    change.AddMember("key", str(c.key), a);
    change.AddMember("before", str(c.before), a);
    change.AddMember("after", str(c.after), a);
    changes.PushBack(change, a);
  }
  segment.AddMember("config_changes", changes, a);
  history.PushBack(segment, a);
  return history;
}

rapidjson::Value results_json(const RunResults& s, const std::string& previous_record, const std::string& start_time,
                              rapidjson::Document::AllocatorType& a) {
  rapidjson::Value results(rapidjson::kObjectType);
  auto str = [&](const std::string& v) { return rapidjson::Value(v.c_str(), static_cast<rapidjson::SizeType>(v.size()), a); };
  auto number = [&](const char* key, double v) {
    results.AddMember(rapidjson::StringRef(key), std::isfinite(v) ? rapidjson::Value(v) : rapidjson::Value(), a);
  };
  double first_loss = s.losses.empty() ? std::nan("") : s.losses.front(), wall_seconds = s.wall_seconds;
  int64_t segments = 1;
  rapidjson::Document previous;
  const rapidjson::Value* previous_results = nullptr;
  if (s.first_step > 0 && !previous_record.empty() && !parse_json_into(previous, previous_record) &&
      previous.IsObject() && previous.HasMember("results") && previous["results"].IsObject()) {
    const auto& p = previous["results"];
    previous_results = &p;
    if (p.HasMember("first_loss") && p["first_loss"].IsNumber()) first_loss = p["first_loss"].GetDouble();
    if (p.HasMember("wall_seconds") && p["wall_seconds"].IsNumber()) wall_seconds += p["wall_seconds"].GetDouble();
    segments = (p.HasMember("segments") && p["segments"].IsInt64() ? p["segments"].GetInt64() : 1) + 1;
  }
  results.AddMember("steps", s.steps, a);
  results.AddMember("first_step", s.first_step, a);
  results.AddMember("segments", segments, a);
  results.AddMember("segment_history", segment_history(s, previous_results, start_time, a), a);
  results.AddMember("parameters", s.parameters, a);
  results.AddMember("parameters_receiving_gradient",
                    s.parameters_receiving_gradient >= 0 ? rapidjson::Value(s.parameters_receiving_gradient)
                                                          : rapidjson::Value(),
                    a);
  rapidjson::Value dead(rapidjson::kArrayType);
  for (const auto& name : s.dead_parameters) dead.PushBack(str(name), a);
  results.AddMember("dead_parameters", dead, a);
  rapidjson::Value warnings(rapidjson::kArrayType);
  for (const auto& w : s.warnings) warnings.PushBack(str(w), a);
  results.AddMember("warnings", warnings, a);
  results.AddMember("skipped_steps", s.skipped_steps, a);
  number("first_loss", first_loss);
  number("final_loss", s.losses.empty() ? std::nan("") : s.losses.back());
  number("final_aux_loss", s.final_aux_loss);
  double best = std::nan("");
  for (double l : s.losses) best = std::isnan(best) || l < best ? l : best;
  number("best_loss", best);
  const bool evaluated = s.val.tokens > 0, recalled = s.facts.facts > 0;  // NaN, written null, when not measured
  number("val_loss", evaluated ? s.val.loss : std::nan(""));
  number("val_perplexity", evaluated ? s.val.perplexity : std::nan(""));
  number("fact_recall", recalled ? s.facts.rate() : std::nan(""));
  number("fact_recall_seen", recalled ? s.facts.seen_rate() : std::nan(""));
  number("fact_recall_unseen", recalled ? s.facts.unseen_rate() : std::nan(""));
  number("tokens_per_second", s.tokens_per_second);
  // The arithmetic rate: what two plugins' step times alone cannot say is whether one is
  // slower because it computes more or because it computes less efficiently.
  number("flops_per_token", s.flops_per_token);
  number("achieved_flops", s.flops_per_token * s.tokens_per_second);
  number("wall_seconds", wall_seconds);  // all segments
  const double run_steps = static_cast<double>(s.steps - s.first_step);
  auto per_step = [&](double total) { return run_steps > 0 ? total / run_steps : std::nan(""); };
  rapidjson::Value step_time(rapidjson::kObjectType);
  for (const auto& [key, total] : {std::pair{"step_s", s.step_seconds}, {"forward_s", s.forward_seconds},
                                   {"backward_s", s.backward_seconds}, {"optimizer_s", s.optimizer_seconds},
                                   {"communication_s", s.communication_seconds}}) {
    const double mean = per_step(total);
    step_time.AddMember(rapidjson::StringRef(key), std::isfinite(mean) ? rapidjson::Value(mean) : rapidjson::Value(), a);
  }
  results.AddMember("step_time", step_time, a);  // mean seconds per optimizer step of this run
  results.AddMember("peak_rss_bytes", s.peak_rss_bytes, a);
  results.AddMember("peak_cuda_bytes", s.peak_cuda_bytes > 0 ? rapidjson::Value(s.peak_cuda_bytes) : rapidjson::Value(), a);
  if (!s.memory_usage.empty()) {
    rapidjson::Value usage(rapidjson::kObjectType);
    for (const auto& [name, value] : s.memory_usage) usage.AddMember(str(name), rapidjson::Value(value), a);
    results.AddMember("memory_usage", usage, a);
  }
  if (s.generation.samples > 0) results.AddMember("generation", generation_json(s.generation, a), a);
  results.AddMember("checkpoint", str(s.checkpoint), a);
  if (const auto md5 = s.checkpoint.empty() ? "" : CheckpointFolder(s.checkpoint).weights_md5(); !md5.empty())
    results.AddMember("checkpoint_md5", str(md5), a);
  return results;
}

}  // namespace

ExperimentRecord::ExperimentRecord(RunDescription run, PluginIdentity plugin, const RuntimeInfo& runtime)
    : run_(std::move(run)), path_(RunDirectory(run_.run_dir).record().string()), start_time_(now_iso8601()) {
  run_.config_path = fs::absolute(run_.config_path).string();  // record.md is found beside it from any directory
  ensure_directory(run_.run_dir, "run");
  const RunDirectory dir(run_.run_dir);
  if (fs::is_regular_file(dir.record())) previous_record_ = read_text_file(dir.record().string(), "record");
  if (fs::is_regular_file(dir.diff_patch())) previous_diff_ = read_text_file(dir.diff_patch().string(), "diff");
  const auto git = read_git_state(fs::absolute(run_.config_path).parent_path().string());
  if (git.dirty && !git.diff.empty()) write_file(dir.diff_patch().string(), git.diff);
  DataFiles data_files;
  for (const auto& p : run_.data_files)
    if (!p.empty() && fs::exists(p)) data_files.emplace_back(p, md5_file(p));
  versions_json_ = write_json([&](Writer& w) { write_versions(w, git, plugin, data_files); });
  environment_json_ = write_json([&](Writer& w) { write_environment(w, runtime); });
  reproduce_json_ =
      write_json([&](Writer& w) { write_reproduction(w, git, plugin, data_files, RunDirectory(run_.run_dir), run_.command_line); });
  write(nullptr, "running", "");
}

void ExperimentRecord::finish(const RunResults* results, const std::string& status, const std::string& failure) {
  write(results, status, failure);
}

bool ExperimentRecord::restore_previous() {
  rapidjson::Document previous;
  const bool usable = !previous_record_.empty() && !parse_json_into(previous, previous_record_) &&
                      previous.IsObject() && previous.HasMember("status") && previous["status"].IsString() &&
                      std::string(previous["status"].GetString()) != "running";
  if (!usable) return false;
  write_file_atomically(path_, previous_record_);
  const RunDirectory dir(run_.run_dir);
  if (!previous_diff_.empty()) write_file(dir.diff_patch().string(), previous_diff_);
  return true;
}

void ExperimentRecord::write(const RunResults* s, const std::string& status, const std::string& failure) {
  rapidjson::Document doc(rapidjson::kObjectType);
  auto& a = doc.GetAllocator();
  auto str = [&](const std::string& v) { return rapidjson::Value(v.c_str(), static_cast<rapidjson::SizeType>(v.size()), a); };
  auto parsed = [&](const std::string& text) {
    rapidjson::Document part(&a);
    part.Parse(text.c_str());
    return rapidjson::Value(part, a);
  };
  doc.AddMember("schema", 2, a);  // 2: the *_loss results are cross-entropy, the aux loss apart
  rapidjson::Value experiment(rapidjson::kObjectType);
  experiment.AddMember("id", str(run_.id), a);
  experiment.AddMember("run_uid", str(run_.run_uid), a);
  experiment.AddMember("description", str(run_.description), a);
  experiment.AddMember("start_time", str(start_time_), a);
  experiment.AddMember("end_time", status == "running" ? rapidjson::Value() : str(now_iso8601()), a);
  experiment.AddMember("command_line", str(run_.command_line), a);
  experiment.AddMember("config_path", str(run_.config_path), a);
  experiment.AddMember("pid", static_cast<int64_t>(getpid()), a);
  experiment.AddMember("host", str(hostname()), a);
  experiment.AddMember("metrics_url", str(run_.metrics_url), a);
  doc.AddMember("experiment", experiment, a);
  doc.AddMember("status", str(status), a);
  doc.AddMember("failure", str(failure), a);
  doc.AddMember("versions", parsed(versions_json_), a);
  doc.AddMember("hyperparameters", parsed(run_.config_json), a);
  rapidjson::Value parent;
  if (const auto& o = run_.parent) {
    parent.SetObject();
    parent.AddMember("path", str(o->path), a);
    parent.AddMember("format", str(format_name(o->format)), a);
    parent.AddMember("weights_file", str(o->weights_file), a);
    parent.AddMember("xxh3", str(o->checksum), a);
    parent.AddMember("run_id", str(o->run_id), a);
    parent.AddMember("run_dir", str(o->run_dir), a);
    parent.AddMember("step", o->step >= 0 ? rapidjson::Value(o->step) : rapidjson::Value(), a);
  }
  doc.AddMember("parent", parent, a);  // null: the plugin's own initialisation
  rapidjson::Value distributed(rapidjson::kObjectType);
  distributed.AddMember("world_size", run_.distributed.world_size, a);
  distributed.AddMember("backend", str(run_.distributed.backend), a);
  distributed.AddMember("launcher", str(run_.distributed.launcher), a);
  rapidjson::Value hosts(rapidjson::kArrayType);
  for (const auto& h : run_.distributed.hosts) hosts.PushBack(str(h), a);
  distributed.AddMember("hosts", hosts, a);
  doc.AddMember("distributed", distributed, a);
  doc.AddMember("environment", parsed(environment_json_), a);
  doc.AddMember("results", s ? results_json(*s, previous_record_, start_time_, a) : rapidjson::Value(), a);
  doc.AddMember("reproduce", parsed(reproduce_json_), a);
  rapidjson::StringBuffer buffer;
  rapidjson::PrettyWriter<rapidjson::StringBuffer> w(buffer);
  w.SetIndent(' ', 2);
  doc.Accept(w);
  write_file_atomically(path_, std::string(buffer.GetString()) + "\n");
  if (status == "running") return;
  try {
    fill_record_markdown(doc, fs::path(run_.run_dir));
  } catch (const std::exception& e) {  // record.json is written; a failed run's own error matters more
    std::cerr << "warning: record.md not updated: " << e.what() << "\n";
  }
}

}  // namespace xlhost::core
