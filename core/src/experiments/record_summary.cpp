// Reading records back: the checked document, summaries for listings, lineage, and the
// results section of the experiment's record.md.
#include <rapidjson/document.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

#include "xlhost/core/checkpoint/checkpoint_directory.hpp"
#include "xlhost/core/experiments/experiment_record.hpp"
#include "xlhost/core/run/run_directory.hpp"
#include "xlhost/core/util/error.hpp"
#include "xlhost/core/util/file_io.hpp"
#include "xlhost/core/util/json.hpp"
#include "xlhost/core/util/progress.hpp"

namespace xlhost::core {

namespace fs = std::filesystem;

rapidjson::Document read_record(const std::string& out_dir, const std::string& id) {
  const RunDirectory run(out_dir, id);
  const fs::path path = run.record();
  const auto read = run.read(path, "record", kMaxRecordBytes);
  if (!read) throw UserError("no record for " + id + " (" + path.string() + " is missing)");
  const std::string& text = *read;
  rapidjson::Document doc;
  if (parse_json_into(doc, text) || !doc.IsObject() || !doc.HasMember("experiment") || !doc["experiment"].IsObject() ||
      !doc.HasMember("status") || !doc["status"].IsString() || !doc.HasMember("versions") ||
      !doc["versions"].IsObject() || !doc["versions"].HasMember("plugin") || !doc["versions"]["plugin"].IsObject() ||
      !doc.HasMember("hyperparameters") || !doc["hyperparameters"].IsObject())
    throw UserError(path.string() + ": corrupted record (not the record.json schema)");
  return doc;
}

std::string member_string(const rapidjson::Value& object, const char* key) {
  return object.IsObject() && object.HasMember(key) && object[key].IsString() ? object[key].GetString() : "";
}

double member_number(const rapidjson::Value& object, const char* key) {
  return object.IsObject() && object.HasMember(key) && object[key].IsNumber() ? object[key].GetDouble() : std::nan("");
}

std::string describe_code_version(const rapidjson::Value& git, bool full_commit) {
  if (member_string(git, "commit").empty()) return "not in a git repository";
  std::string text = full_commit ? member_string(git, "commit") + " on " + member_string(git, "branch")
                                 : member_string(git, "short_commit");
  if (git.HasMember("dirty") && git["dirty"].IsBool() && git["dirty"].GetBool() && git.HasMember("dirty_files") &&
      git["dirty_files"].IsArray()) {
    text += ", with uncommitted changes to";
    for (const auto& f : git["dirty_files"].GetArray()) text += std::string(" `") + f.GetString() + "`";
  }
  return text;
}

std::vector<std::string> benchmark_summaries(const RunDirectory& run) {
  std::vector<std::string> out;
  const auto text = run.read(run.benchmarks(), "benchmarks", kMaxRecordBytes);
  rapidjson::Document doc;
  if (!text || parse_json_into(doc, *text) || !doc.IsObject()) return out;
  for (const auto& m : doc.GetObject()) {
    if (!m.value.IsObject()) continue;
    const double acc = member_number(m.value, "acc"), bpb = member_number(m.value, "bits_per_byte");
    if (std::isfinite(acc)) out.push_back(std::string(m.name.GetString()) + " " + format_fixed(100 * acc, 1) + "%");
    else if (std::isfinite(bpb)) out.push_back(std::string(m.name.GetString()) + " " + format_fixed(bpb, 3) + " bpb");
  }
  return out;
}

RecordSummary read_record_summary(const std::string& run_dir) {
  const fs::path dir(run_dir);
  return summarize_record(read_record(dir.parent_path().string(), dir.filename().string()), run_dir);
}

RecordSummary summarize_record(const rapidjson::Document& doc, const std::string& run_dir) {
  const fs::path dir(run_dir);
  const auto& e = doc["experiment"];
  RecordSummary r;
  r.run_dir = run_dir;
  r.id = member_string(e, "id");
  if (r.id.empty()) r.id = dir.filename().string();
  r.start_time = member_string(e, "start_time");
  r.run_uid = member_string(e, "run_uid");
  r.metrics_url = member_string(e, "metrics_url");
  r.status = doc["status"].GetString();
  r.pid = e.HasMember("pid") && e["pid"].IsInt64() ? e["pid"].GetInt64() : 0;
  if (r.status == "running" && r.pid > 0 && member_string(e, "host") == hostname() &&
      kill(static_cast<pid_t>(r.pid), 0) != 0 && errno == ESRCH) {
    // The process died without finishing its record: killed (SIGKILL, power loss), or a
    // crash whose handler could only leave its one line.
    const auto crash_report = RunDirectory(dir).crash_report();
    r.status = "interrupted";
    if (const auto text = RunDirectory(dir).read(crash_report, "crash report", kMaxCrashReportBytes)) {
      r.status = "crashed";
      r.crash = text->substr(0, text->find('\n'));
    }
  }
  r.last_checkpoint = latest_checkpoint(run_dir);
  r.plugin = member_string(doc["versions"]["plugin"], "name");
  if (doc.HasMember("results") && doc["results"].IsObject()) {
    r.has_results = true;
    r.final_loss = member_number(doc["results"], "final_loss");
    r.val_loss = member_number(doc["results"], "val_loss");
    if (doc.HasMember("results_std") && doc["results_std"].IsObject()) {
      r.final_loss_std = member_number(doc["results_std"], "final_loss");
      r.val_loss_std = member_number(doc["results_std"], "val_loss");
    }
    r.tokens_per_second = member_number(doc["results"], "tokens_per_second");
  }
  r.benchmarks = benchmark_summaries(RunDirectory(run_dir));
  return r;
}

std::vector<RecordSummary> list_records(const std::string& out_dir, std::vector<std::string>* problems) {
  std::vector<RecordSummary> out;
  for (const auto& dir : RunDirectory::run_folders_in(out_dir)) {
    try {
      out.push_back(read_record_summary(dir.string()));
    } catch (const UserError& e) {
      if (problems) problems->push_back(e.what());
    }
  }
  std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.start_time < b.start_time; });
  return out;
}

std::vector<std::string> record_lineage(const rapidjson::Value& record) {
  std::vector<std::string> lines;
  const rapidjson::Value* current = &record;
  rapidjson::Document ancestor;
  std::string id = current->HasMember("experiment") ? member_string((*current)["experiment"], "id") : "";
  lines.push_back(id + " (this run)");
  for (int depth = 0; depth < 64; ++depth) {
    if (!current->HasMember("parent") || !(*current)["parent"].IsObject()) {
      lines.push_back("the plugin's initialisation");
      break;
    }
    const auto& p = (*current)["parent"];
    const double step = member_number(p, "step");
    const std::string run_id = member_string(p, "run_id"), run_dir = member_string(p, "run_dir");
    lines.push_back((run_id.empty() ? "" : run_id + (std::isfinite(step) ? " step " + std::to_string(int64_t(step)) : "") +
                                                ": ") +
                    member_string(p, "format") + " " + member_string(p, "path") + ", xxh3 " +
                    member_string(p, "xxh3").substr(0, 12));
    if (run_dir.empty()) break;
    const fs::path file = RunDirectory(fs::path(run_dir)).record();
    if (!fs::exists(file) || parse_json_into(ancestor, read_text_file(file.string(), "record")) || !ancestor.IsObject()) {
      lines.push_back("(" + file.string() + " is gone: the chain ends here)");
      break;
    }
    current = &ancestor;
  }
  return lines;
}

std::vector<std::pair<std::string, std::string>> record_rows(const rapidjson::Document& record) {
  const auto& e = record["experiment"];
  const auto& git = record["versions"].HasMember("git") ? record["versions"]["git"] : record["versions"];
  const rapidjson::Value none;
  const auto& r = record.HasMember("results") && record["results"].IsObject() ? record["results"] : none;
  auto fixed = [](double v, int digits) { return std::isfinite(v) ? format_fixed(v, digits) : std::string("-"); };
  std::vector<std::pair<std::string, std::string>> rows;
  auto row = [&](const std::string& name, const std::string& value) { rows.emplace_back(name, value); };
  row("status", record["status"].GetString() + (member_string(record, "failure").empty() ? "" : ": " + member_string(record, "failure")));
  row("run", member_string(e, "start_time") + " to " + member_string(e, "end_time") + " on " + member_string(e, "host"));
  row("code", describe_code_version(git, false));
  row("plugin", member_string(record["versions"]["plugin"], "name") + " " + member_string(record["versions"]["plugin"], "version"));
  row("steps", fixed(member_number(r, "steps"), 0));
  row("train loss first / final / best", fixed(member_number(r, "first_loss"), 4) + " / " + fixed(member_number(r, "final_loss"), 4) +
                                             " / " + fixed(member_number(r, "best_loss"), 4));
  row("val loss (perplexity)", fixed(member_number(r, "val_loss"), 4) + " (" + fixed(member_number(r, "val_perplexity"), 3) + ")");
  row("fact recall", std::isfinite(member_number(r, "fact_recall")) ? fixed(100 * member_number(r, "fact_recall"), 1) + "%" : "-");
  row("tokens/s", fixed(member_number(r, "tokens_per_second"), 0));
  row("checkpoint", member_string(r, "checkpoint").empty() ? "-" : member_string(r, "checkpoint"));
  row("command", "`" + member_string(e, "command_line") + "`");
  return rows;
}

std::string fill_record_markdown(const rapidjson::Document& record, const fs::path& run_dir) {
  const auto& e = record["experiment"];
  const std::string config_path = member_string(e, "config_path");
  if (config_path.empty()) return "";
  const fs::path md = record_markdown_beside(config_path);
  if (!fs::exists(md)) return "";
  std::string block = std::string(kRecordResultsBegin) + "\n## Results (filled in by xlhost run)\n\n| | |\n| --- | --- |\n";
  for (const auto& [name, value] : record_rows(record)) block += "| " + name + " | " + value + " |\n";
  block += "\nFull record: `xlhost exp show " + member_string(e, "id") + "`; report: `xlhost exp report " + member_string(e, "id") +
           "`.\n" + kRecordResultsEnd + "\n";

  std::string text = read_text_file(md.string(), "record.md");
  const auto begin = text.find(kRecordResultsBegin), end = text.find(kRecordResultsEnd);
  if (begin != std::string::npos && end != std::string::npos && end > begin) {
    size_t after = end + std::strlen(kRecordResultsEnd);
    if (after < text.size() && text[after] == '\n') ++after;
    text.replace(begin, after - begin, block);
  } else {
    text += (text.empty() || text.back() == '\n' ? "\n" : "\n\n") + block;
  }
  const auto filled = RunDirectory(run_dir).record_markdown();
  write_file_atomically(filled.string(), text);
  return filled.string();
}

}  // namespace xlhost::core
