#include "xlhost/core/experiment_report.hpp"

#include <rapidjson/document.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "xlhost/core/error.hpp"
#include "xlhost/core/experiment_record.hpp"
#include "xlhost/core/file_io.hpp"
#include "xlhost/core/record_comparison.hpp"

namespace xlhost::core {

namespace {

namespace fs = std::filesystem;

std::string single_quoted(const std::string& text) {
  std::string out = "'";
  for (char c : text) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// train.log → <id>.train.dat (step cross-entropy lr tokens/s) and <id>.val.dat (step val_loss).
// Returns {training rows, validation rows}.
std::pair<size_t, size_t> write_curves(const fs::path& train_log, const fs::path& train_dat, const fs::path& val_dat) {
  std::ifstream in(train_log);
  std::ofstream train(train_dat), val(val_dat);
  train << "# step cross_entropy lr tokens_per_s\n";
  val << "# step val_loss\n";
  size_t train_rows = 0, val_rows = 0;
  for (std::string line; std::getline(in, line);) {
    rapidjson::Document d;
    d.Parse(line.c_str());
    if (d.HasParseError() || !d.IsObject() || !d.HasMember("step") || !d["step"].IsNumber()) continue;
    const auto number = [&](const char* key) { return d.HasMember(key) && d[key].IsNumber() ? d[key].GetDouble() : 0.0; };
    if (d.HasMember("loss") && d["loss"].IsNumber()) {
      // the plugin's auxiliary loss is taken out: curves of different plugins compare cross-entropy
      train << d["step"].GetInt64() << " " << number("loss") - number("aux_loss") << " " << number("lr") << " "
            << number("tokens_per_s") << "\n";
      ++train_rows;
    } else if (d.HasMember("val_loss") && d["val_loss"].IsNumber()) {
      val << d["step"].GetInt64() << " " << number("val_loss") << "\n";
      ++val_rows;
    }
  }
  return {train_rows, val_rows};
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

}  // namespace

ReportFiles write_report(const std::string& out_dir, const std::vector<std::string>& ids, const std::string& dest) {
  if (ids.empty()) throw UserError("exp report needs an experiment id");
  const auto comparison = compare_records(out_dir, ids);  // also checks every record
  const auto record = read_record(out_dir, ids[0]);
  fs::create_directories(dest);
  ReportFiles files;
  files.markdown = (fs::path(dest) / "report.md").string();

  // Curves, one data file per run and curve kind; gnuplot draws what exists.
  std::string loss_plot, lr_plot, speed_plot;
  for (size_t run = 0; run < ids.size(); ++run) {
    const std::string& id = ids[run];
    const std::string colour = " lc " + std::to_string(run + 1);  // a run's train and val curves share a colour
    const auto rows = write_curves(fs::path(out_dir) / id / "train.log", fs::path(dest) / (id + ".train.dat"),
                                   fs::path(dest) / (id + ".val.dat"));
    auto add = [](std::string& plot, const std::string& spec) { plot += (plot.empty() ? "plot " : ", ") + spec; };
    if (rows.first > 0) {
      add(loss_plot, single_quoted(id + ".train.dat") + " using 1:2 with lines lw 2" + colour + " title " + single_quoted(id + " train"));
      add(lr_plot, single_quoted(id + ".train.dat") + " using 1:3 with lines lw 2" + colour + " title " + single_quoted(id));
      add(speed_plot, single_quoted(id + ".train.dat") + " using 1:4 with lines lw 2" + colour + " title " + single_quoted(id));
    }
    if (rows.second > 0)
      add(loss_plot, single_quoted(id + ".val.dat") + " using 1:2 with linespoints pt 7" + colour + " title " + single_quoted(id + " val"));
  }
  std::string script = "set terminal svg size 800,450 enhanced font 'sans,12' background '#ffffff'\n"
                       "set grid\nset key top right\nset xlabel 'step'\n";
  auto picture = [&](const std::string& file, const std::string& title, const std::string& ylabel, const std::string& plot) {
    if (plot.empty()) return;
    script += "set output " + single_quoted(file) + "\nset title " + single_quoted(title) + "\nset ylabel " +
              single_quoted(ylabel) + "\n" + plot + "\n";
    files.pictures.push_back((fs::path(dest) / file).string());
  };
  picture("loss.svg", "loss", "cross-entropy (nats/token)", loss_plot);
  picture("lr.svg", "learning rate", "lr", lr_plot);
  picture("throughput.svg", "throughput", "tokens/s", speed_plot);
  if (!files.pictures.empty()) {
    write_file_atomically((fs::path(dest) / "plots.gp").string(), script + "set output\n");
    const int status = std::system(("cd " + single_quoted(dest) + " && gnuplot plots.gp 2>gnuplot.log").c_str());
    if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
      throw UserError("exp report draws its curves with gnuplot, which is not installed (apt-get install gnuplot-nox)");
    if (status != 0)
      throw UserError("gnuplot failed on " + (fs::path(dest) / "plots.gp").string() + ": " +
                      read_text_file((fs::path(dest) / "gnuplot.log").string(), "gnuplot log"));
  }

  const auto& e = record["experiment"];
  const auto& versions = record["versions"];
  const auto& git = versions.HasMember("git") ? versions["git"] : versions;
  std::ostringstream md;
  md << "# Experiment " << ids[0] << "\n\n" << (member_string(e, "description").empty() ? "" : member_string(e, "description") + "\n\n");
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
    md << "- **reproduce**: " << (member_string(r, "checkout").empty() ? "" : "`" + member_string(r, "checkout") + "`, then ") << "`"
       << member_string(r, "exact_command") << "`\n";
  }

  const fs::path human = member_string(e, "config_path").empty() ? fs::path()
                                                          : fs::absolute(member_string(e, "config_path")).parent_path() / "record.md";
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
  const fs::path samples = fs::path(out_dir) / ids[0] / "samples.txt";
  if (fs::exists(samples))
    md << "```text\n" << read_text_file(samples.string(), "samples") << "```\n";
  else
    md << "The run wrote no samples (set generate.prompts_path and generate.samples).\n";
  write_file_atomically(files.markdown, md.str());
  return files;
}

}  // namespace xlhost::core
