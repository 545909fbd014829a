#include "xlhost/core/experiments/experiment_report.hpp"

#include <sys/wait.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "xlhost/core/experiments/experiment_record.hpp"
#include "xlhost/core/experiments/record_comparison.hpp"
#include "xlhost/core/run/run_directory.hpp"
#include "xlhost/core/experiments/train_log.hpp"
#include "xlhost/core/util/error.hpp"
#include "xlhost/core/util/file_io.hpp"
#include "xlhost/core/util/json.hpp"
#include "xlhost/core/util/progress.hpp"

namespace xlhost::core {

namespace {

namespace fs = std::filesystem;

std::string single_quoted(const std::string& text) {
  std::string out = "'";
  for (char c : text) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// train.log → <id>.train.dat (step cross-entropy lr tokens/s) and <id>.val.dat (step val_loss).
// Curves of different plugins compare cross-entropy (train.log's loss, the auxiliary loss apart).
// Returns {training rows, validation rows}.
std::pair<size_t, size_t> write_curves(const fs::path& train_log, const fs::path& train_dat, const fs::path& val_dat) {
  const auto log = read_train_log(train_log);
  std::ofstream train(train_dat), val(val_dat);
  train << "# step cross_entropy lr tokens_per_s\n";
  for (const auto& s : log.steps) train << s.step << " " << s.loss << " " << s.lr << " " << s.tokens_per_second << "\n";
  val << "# step val_loss\n";
  for (const auto& e : log.evals) val << e.step << " " << e.val_loss << "\n";
  return {log.steps.size(), log.evals.size()};
}

// The run folders behind a record: the run itself, or for a seed group (run --seeds) its
// sub-runs, each with a label.
std::vector<std::pair<std::string, fs::path>> run_folders(const std::string& out_dir, const std::string& id,
                                                          const rapidjson::Document& record) {
  const RunDirectory dir(out_dir, id);
  if (!record.HasMember("runs") || !record["runs"].IsArray() || record["runs"].Empty()) return {{id, dir.root()}};
  std::vector<std::pair<std::string, fs::path>> folders;
  const auto& runs = record["runs"];
  for (rapidjson::SizeType i = 0; i < runs.Size(); ++i)
    if (runs[i].IsString()) {
      const bool seeded = record.HasMember("seeds") && record["seeds"].IsArray() && i < record["seeds"].Size();
      folders.emplace_back(id + (seeded ? " seed " + std::to_string(record["seeds"][i].GetInt64()) : ""),
                           dir.root() / runs[i].GetString());
    }
  return folders;
}

// The report's pictures: loss (train and val), learning rate and throughput of every run
// (every seed of a seed group, in the run's colour), drawn by gnuplot into `dest`.
// Returns the SVG files written.
std::vector<std::string> draw_curves(const std::string& out_dir, const std::vector<std::string>& ids,
                                     const std::vector<rapidjson::Document>& records, const fs::path& dest) {
  std::string loss_plot, lr_plot, speed_plot;
  auto add = [](std::string& plot, const std::string& spec) { plot += (plot.empty() ? "plot " : ", ") + spec; };
  for (size_t run = 0; run < ids.size(); ++run) {
    const std::string colour = " lc " + std::to_string(run + 1);  // a run's train and val curves share a colour
    const auto folders = run_folders(out_dir, ids[run], records[run]);
    for (size_t k = 0; k < folders.size(); ++k) {
      const auto& [label, folder] = folders[k];
      const std::string name = std::to_string(run) + "-" + std::to_string(k);  // ids may be paths
      const auto rows = write_curves(RunDirectory(folder).train_log(), dest / (name + ".train.dat"), dest / (name + ".val.dat"));
      const std::string train = single_quoted(name + ".train.dat"), val = single_quoted(name + ".val.dat");
      if (rows.first > 0) {
        add(loss_plot, train + " using 1:2 with lines lw 2" + colour + " title " + single_quoted(label + " train"));
        add(lr_plot, train + " using 1:3 with lines lw 2" + colour + " title " + single_quoted(label));
        add(speed_plot, train + " using 1:4 with lines lw 2" + colour + " title " + single_quoted(label));
      }
      if (rows.second > 0)
        add(loss_plot, val + " using 1:2 with linespoints pt 7" + colour + " title " + single_quoted(label + " val"));
    }
  }
  std::string script = "set terminal svg size 800,450 enhanced font 'sans,12' background '#ffffff'\n"
                       "set grid\nset key top right\nset xlabel 'step'\n";
  std::vector<std::string> pictures;
  auto picture = [&](const std::string& file, const std::string& title, const std::string& ylabel, const std::string& plot) {
    if (plot.empty()) return;
    script += "set output " + single_quoted(file) + "\nset title " + single_quoted(title) + "\nset ylabel " +
              single_quoted(ylabel) + "\n" + plot + "\n";
    pictures.push_back((dest / file).string());
  };
  picture("loss.svg", "loss", "cross-entropy (nats/token)", loss_plot);
  picture("lr.svg", "learning rate", "lr", lr_plot);
  picture("throughput.svg", "throughput", "tokens/s", speed_plot);
  if (pictures.empty()) return pictures;
  write_file_atomically((dest / "plots.gp").string(), script + "set output\n");
  const int status = std::system(("cd " + single_quoted(dest.string()) + " && gnuplot plots.gp 2>gnuplot.log").c_str());
  if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
    throw UserError("exp report draws its curves with gnuplot, which is not installed (apt-get install gnuplot-nox)");
  if (status != 0)
    throw UserError("gnuplot failed on " + (dest / "plots.gp").string() + ": " +
                    read_text_file((dest / "gnuplot.log").string(), "gnuplot log"));
  return pictures;
}

// record.md as a part of the report: its headings one level down, without the results
// block `xlhost run` filled in (the report has its own).
std::string embedded_record_markdown(const std::string& text) {
  std::istringstream in(text);
  std::string out;
  bool in_results = false;
  for (std::string line; std::getline(in, line);) {
    if (line == kRecordResultsBegin) in_results = true;
    if (!in_results) out += (line.rfind("#", 0) == 0 ? "#" : "") + line + "\n";
    if (line == kRecordResultsEnd) in_results = false;
  }
  return out;
}

// The report's head: what ran, where, with which code, data and command.
void write_overview(std::ostream& md, const std::string& id, const rapidjson::Document& record) {
  const auto& e = record["experiment"];
  const auto& versions = record["versions"];
  const auto& git = versions.HasMember("git") ? versions["git"] : versions;
  md << "# Experiment " << id << "\n\n" << (member_string(e, "description").empty() ? "" : member_string(e, "description") + "\n\n");
  md << "- **status**: " << record["status"].GetString()
     << (member_string(record, "failure").empty() ? "" : " (" + member_string(record, "failure") + ")") << "\n"
     << "- **run**: " << member_string(e, "start_time") << " to " << member_string(e, "end_time") << " on " << member_string(e, "host") << "\n"
     << "- **plugin**: " << member_string(versions["plugin"], "name") << " " << member_string(versions["plugin"], "version")
     << " (md5 " << member_string(versions["plugin"], "md5") << ")\n"
     << "- **code**: " << describe_code_version(git, true)
     << (member_string(git, "diff_patch").empty() ? "" : " (diff.patch beside the record)") << "\n";
  if (versions.HasMember("data") && versions["data"].IsArray())
    for (const auto& d : versions["data"].GetArray())
      md << "- **data**: `" << member_string(d, "path") << "` md5 " << member_string(d, "md5") << "\n";
  md << "- **command**: `" << member_string(e, "command_line") << "`\n";
  if (record.HasMember("reproduce") && record["reproduce"].IsObject()) {
    const auto& r = record["reproduce"];
    const std::string checkout = member_string(r, "checkout");
    md << "- **reproduce**: ";
    if (!checkout.empty()) md << "`" << checkout << "`, then ";
    md << "`" << member_string(r, "exact_command") << "`\n";
  }
}

double result(const rapidjson::Document& record, const char* key) {
  return record.HasMember("results") ? member_number(record["results"], key) : std::nan("");
}

// What the numbers can and cannot say: sizes and their difference, warnings raised during
// the runs, skipped steps, seeds and spread, run length.
// "0.0.1 300 steps, 614.4k tokens; 0.1.1 200 steps, 409.6k tokens" when the runs' budgets
// differ (a comparison of unequal budgets is not like for like), else "".
std::string unequal_budgets(const std::vector<std::string>& ids, const std::vector<rapidjson::Document>& records) {
  std::vector<std::pair<double, double>> budgets;
  std::string listed;
  for (size_t i = 0; i < ids.size(); ++i) {
    const auto& r = records[i];
    const rapidjson::Value none;
    const auto& hp = r["hyperparameters"];
    auto in = [&](const char* section, const char* key) {
      return hp.HasMember(section) && hp[section].IsObject() ? member_number(hp[section], key) : std::nan("");
    };
    const double world = r.HasMember("distributed") && r["distributed"].IsObject()
                             ? member_number(r["distributed"], "world_size") : 1.0;
    const double steps = r.HasMember("results") && r["results"].IsObject() ? member_number(r["results"], "steps") : std::nan("");
    const double tokens = steps * in("train", "batch_size") * in("train", "accumulation_steps") * in("data", "seq_len") *
                          (std::isfinite(world) && world > 0 ? world : 1.0);
    budgets.emplace_back(steps, tokens);
    listed += (i ? "; " : "") + ids[i] + " " + format_fixed(steps, 0) + " steps, " + format_count(tokens) + " tokens";
  }
  for (const auto& b : budgets)
    if (b != budgets.front()) return listed;
  return "";
}

void write_reading_guide(std::ostream& md, const std::vector<std::string>& ids, const std::vector<rapidjson::Document>& records) {
  md << "\n## Reading these results\n\n";
  const double base_parameters = result(records[0], "parameters");
  bool single_seed = false;
  for (size_t i = 0; i < ids.size(); ++i) {
    const auto& r = records[i];
    const double parameters = result(r, "parameters"), receiving = result(r, "parameters_receiving_gradient");
    const size_t seeds = r.HasMember("seeds") && r["seeds"].IsArray() ? r["seeds"].Size() : 1;
    single_seed |= seeds == 1;
    md << "- **" << ids[i] << "**: " << member_string(r["versions"]["plugin"], "name") << ", ";
    if (!std::isnan(parameters)) {
      md << format_count(parameters) << " parameters";
      if (i > 0 && base_parameters > 0 && parameters != base_parameters)
        md << " (" << format_fixed(std::abs(parameters / base_parameters - 1) * 100, 0) << "% "
           << (parameters < base_parameters ? "fewer" : "more") << " than " << ids[0] << ")";
      if (!std::isnan(receiving) && receiving < parameters)
        md << ", of which " << format_count(receiving) << " receive a gradient";
      md << ", ";
    }
    md << format_fixed(result(r, "steps"), 0) << " steps, " << seeds << (seeds == 1 ? " seed" : " seeds (mean ± standard deviation)")
       << ".\n";
    if (r.HasMember("results") && r["results"].IsObject()) {
      const auto& results = r["results"];
      if (results.HasMember("warnings") && results["warnings"].IsArray())
        for (const auto& w : results["warnings"].GetArray())
          if (w.IsString()) md << "  - warning: " << w.GetString() << "\n";
      const double skipped = result(r, "skipped_steps");
      if (skipped > 0) md << "  - " << format_fixed(skipped, 0) << " steps were skipped (non-finite or spiking loss or gradient).\n";
    }
  }
  md << "\n";
  if (single_seed)
    md << "A run with one seed has no measured spread: a difference smaller than the seed-to-seed variation, unknown "
          "here, may be noise. `xlhost run --seeds N` measures it; the comparison marks a best only beyond the spread.\n";
  else
    md << "Every run has several seeds: the comparison marks a best only where the difference exceeds the spreads.\n";
  md << "The loss is the cross-entropy of the training targets; a plugin's auxiliary loss, minimised with it, is "
        "shown apart.\n";
}

// What `xlhost eval --ablate` measured for each run that has an ablations.json.
void write_ablations(std::ostream& md, const std::string& out_dir, const std::vector<std::string>& ids) {
  bool any = false;
  for (const auto& id : ids) {
    const RunDirectory run(fs::path(out_dir) / id);
    const auto text = run.read(run.ablations(), "ablations", kMaxRecordBytes);
    if (!text) continue;
    const auto doc = parse_json(*text, run.ablations().string());
    if (!doc.HasMember("rows") || !doc["rows"].IsArray()) continue;
    if (!any) md << "\n## Memory ablations\n\nHeld-out loss with the memory taken away (`xlhost eval --ablate`): "
                    "off, its path adds nothing; shuffle, the bank's rows permuted; random, random token rows.\n";
    any = true;
    md << "\n### " << id << "\n\n| memory | val loss | perplexity | fact recall |\n|---|---|---|---|\n";
    for (const auto& row : doc["rows"].GetArray()) {
      const double recall = member_number(row, "fact_recall");
      md << "| " << member_string(row, "ablation") << " | " << format_fixed(member_number(row, "val_loss"), 4) << " | "
         << format_fixed(member_number(row, "val_perplexity"), 3) << " | "
         << (std::isnan(recall) ? "-" : format_fixed(100 * recall, 1) + "%") << " |\n";
    }
  }
}

}  // namespace

ReportFiles write_report(const std::string& out_dir, const std::vector<std::string>& ids, const std::string& dest) {
  if (ids.empty()) throw UserError("exp report needs an experiment id");
  const auto comparison = compare_records(out_dir, ids);  // also checks every record
  std::vector<rapidjson::Document> records;
  for (const auto& id : ids) records.push_back(read_record(out_dir, id));
  const auto& record = records[0];
  fs::create_directories(dest);
  ReportFiles files;
  files.markdown = (fs::path(dest) / "report.md").string();
  files.pictures = draw_curves(out_dir, ids, records, dest);

  std::ostringstream md;
  write_overview(md, ids[0], record);
  const std::string config_path = member_string(record["experiment"], "config_path");
  const fs::path human = config_path.empty() ? fs::path() : record_markdown_beside(config_path);
  md << "\n## Plan and findings\n\n";
  if (!human.empty() && fs::exists(human))
    md << "From `" << human.string() << "`:\n\n" << embedded_record_markdown(read_text_file(human.string(), "record.md")) << "\n";
  else
    md << "No record.md beside the config (`xlhost exp new " << ids[0] << "` writes one).\n";

  md << "\n## " << (ids.size() > 1 ? "Comparison" : "Results") << "\n\n";
  files.unequal_budgets = unequal_budgets(ids, records);
  if (!files.unequal_budgets.empty())
    md << "**Unequal budgets** (" << files.unequal_budgets << "): losses and scores below are not like for like.\n\n";
  md << format_comparison(comparison, true);
  write_reading_guide(md, ids, records);
  write_ablations(md, out_dir, ids);
  md << "\n## Curves\n\n";
  if (files.pictures.empty()) md << "No training steps were logged.\n";
  for (const auto& p : files.pictures) md << "![" << fs::path(p).stem().string() << "](" << fs::path(p).filename().string() << ")\n\n";
  md << "\n## Samples\n\n";
  for (size_t i = 0; i < ids.size(); ++i) {
    const auto [label, folder] = run_folders(out_dir, ids[i], records[i]).front();  // a seed group: its first seed
    const fs::path samples = RunDirectory(folder).samples();
    md << "### " << label << "\n\n";
    if (fs::exists(samples))
      md << "```text\n" << read_text_file(samples.string(), "samples") << "```\n\n";
    else
      md << "The run wrote no samples (set generate.prompts_path and generate.samples).\n\n";
  }
  write_file_atomically(files.markdown, md.str());
  return files;
}

}  // namespace xlhost::core
