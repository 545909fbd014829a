#include "xlhost/core/experiments/experiment_report.hpp"

#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "xlhost/core/experiments/experiment_record.hpp"
#include "xlhost/core/experiments/record_comparison.hpp"
#include "xlhost/core/experiments/run_directory.hpp"
#include "xlhost/core/experiments/train_log.hpp"
#include "xlhost/core/util/error.hpp"
#include "xlhost/core/util/file_io.hpp"

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
  for (const auto& s : log.steps) train << s.step << " " << s.loss << " " << s.lr << " " << s.tokens_per_s << "\n";
  val << "# step val_loss\n";
  for (const auto& e : log.evals) val << e.step << " " << e.val_loss << "\n";
  return {log.steps.size(), log.evals.size()};
}

// The report's pictures: loss (train and val), learning rate and throughput of every run,
// drawn by gnuplot into `dest`. Returns the SVG files written.
std::vector<std::string> draw_curves(const std::string& out_dir, const std::vector<std::string>& ids, const fs::path& dest) {
  std::string loss_plot, lr_plot, speed_plot;
  auto add = [](std::string& plot, const std::string& spec) { plot += (plot.empty() ? "plot " : ", ") + spec; };
  for (size_t run = 0; run < ids.size(); ++run) {
    const std::string& id = ids[run];
    const std::string colour = " lc " + std::to_string(run + 1);  // a run's train and val curves share a colour
    const auto rows = write_curves(RunDirectory(out_dir, id).train_log(), dest / (id + ".train.dat"), dest / (id + ".val.dat"));
    const std::string train = single_quoted(id + ".train.dat"), val = single_quoted(id + ".val.dat");
    if (rows.first > 0) {
      add(loss_plot, train + " using 1:2 with lines lw 2" + colour + " title " + single_quoted(id + " train"));
      add(lr_plot, train + " using 1:3 with lines lw 2" + colour + " title " + single_quoted(id));
      add(speed_plot, train + " using 1:4 with lines lw 2" + colour + " title " + single_quoted(id));
    }
    if (rows.second > 0) add(loss_plot, val + " using 1:2 with linespoints pt 7" + colour + " title " + single_quoted(id + " val"));
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

}  // namespace

ReportFiles write_report(const std::string& out_dir, const std::vector<std::string>& ids, const std::string& dest) {
  if (ids.empty()) throw UserError("exp report needs an experiment id");
  const auto comparison = compare_records(out_dir, ids);  // also checks every record
  const auto record = read_record(out_dir, ids[0]);
  fs::create_directories(dest);
  ReportFiles files;
  files.markdown = (fs::path(dest) / "report.md").string();
  files.pictures = draw_curves(out_dir, ids, dest);

  std::ostringstream md;
  write_overview(md, ids[0], record);
  const std::string config_path = member_string(record["experiment"], "config_path");
  const fs::path human = config_path.empty() ? fs::path() : record_markdown_beside(config_path);
  md << "\n## Plan and findings\n\n";
  if (!human.empty() && fs::exists(human))
    md << "From `" << human.string() << "`:\n\n" << embedded_record_markdown(read_text_file(human.string(), "record.md")) << "\n";
  else
    md << "No record.md beside the config (`xlhost exp new " << ids[0] << "` writes one).\n";

  md << "\n## " << (ids.size() > 1 ? "Comparison" : "Results") << "\n\n" << format_comparison(comparison, true);
  md << "\n## Curves\n\n";
  if (files.pictures.empty()) md << "No training steps were logged.\n";
  for (const auto& p : files.pictures) md << "![" << fs::path(p).stem().string() << "](" << fs::path(p).filename().string() << ")\n\n";
  md << "\n## Samples\n\n";
  const fs::path samples = RunDirectory(out_dir, ids[0]).samples();
  if (fs::exists(samples))
    md << "```text\n" << read_text_file(samples.string(), "samples") << "```\n";
  else
    md << "The run wrote no samples (set generate.prompts_path and generate.samples).\n";
  write_file_atomically(files.markdown, md.str());
  return files;
}

}  // namespace xlhost::core
