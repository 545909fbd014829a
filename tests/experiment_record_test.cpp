// record.json provenance against an independent view of the same facts: a git repository
// built with libgit2 in the test, and md5sum(1).
#include <git2.h>
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <cstdio>
#include <sstream>

#include "test_support.hpp"
#include "xlhost/core/experiments/experiment_record.hpp"
#include "xlhost/core/experiments/git_provenance.hpp"
#include "xlhost/core/experiments/record_comparison.hpp"
#include "xlhost/core/device/device_info.hpp"
#include "xlhost/core/train/run_record.hpp"
#include "xlhost/core/util/error.hpp"
#include "xlhost/core/util/file_io.hpp"

using namespace xlhost;

namespace {

std::string commit_all(git_repository* repo, const char* message) {
  git_index* index = nullptr;
  git_repository_index(&index, repo);
  const char* everything = "*";
  git_strarray paths{const_cast<char**>(&everything), 1};
  git_index_add_all(index, &paths, 0, nullptr, nullptr);
  git_index_write(index);
  git_oid tree_id, commit_id;
  git_index_write_tree(&tree_id, index);
  git_index_free(index);
  git_tree* tree = nullptr;
  git_tree_lookup(&tree, repo, &tree_id);
  git_signature* me = nullptr;
  git_signature_now(&me, "test", "test@example.com");
  git_commit_create_v(&commit_id, repo, "HEAD", me, me, nullptr, message, tree, 0);
  git_signature_free(me);
  git_tree_free(tree);
  char hex[GIT_OID_HEXSZ + 1];
  git_oid_tostr(hex, sizeof hex, &commit_id);
  return hex;
}

std::string md5sum(const std::string& path) {
  std::string out;
  FILE* p = popen(("md5sum '" + path + "'").c_str(), "r");
  char buffer[256];
  while (fgets(buffer, sizeof buffer, p)) out += buffer;
  pclose(p);
  return out.substr(0, 32);
}

rapidjson::Document read_json(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  rapidjson::Document d;
  d.Parse(s.str().c_str());
  return d;
}

}  // namespace

TEST(ExperimentRecord, GitCommitDirtyStateAndDataMd5) {
  test::TempDir dir;
  git_libgit2_init();
  git_repository* repo = nullptr;
  ASSERT_EQ(git_repository_init(&repo, dir.path().c_str(), 0), 0);
  test::write_tiny_corpus(dir);
  test::write_text(dir / "exp.json", "{}\n");
  test::write_text(dir / ".gitignore", "out/\ncache/\n");
  const std::string head = commit_all(repo, "experiment 0.0.1");

  auto plugin = core::load_plugin(test::plugin_path("model_original"));
  auto config = test::tiny_config(plugin, dir, {"train.max_steps=3"});
  auto run = [&](const std::string& id) {
    config.section("experiment").set("id", id);
    const std::string run_dir = dir / ("out/" + id);
    core::ExperimentRecord record(core::describe_run(config, dir / "exp.json", "xlhost run test"),
                                  core::plugin_identity(plugin), core::runtime_info());
    core::TrainJob job;
    job.model = core::model_source(plugin);
    job.config = config;
    std::ostringstream log;
    job.log = &log;
    const auto summary = core::train(job);
    record.finish(&summary, "completed");
    return read_json(run_dir + "/record.json");
  };

  auto clean = run("0.0.1");
  const auto& git = clean["versions"]["git"];
  EXPECT_EQ(std::string(git["commit"].GetString()), head);
  EXPECT_EQ(std::string(git["short_commit"].GetString()), head.substr(0, 12));
  EXPECT_FALSE(git["dirty"].GetBool());
  EXPECT_EQ(std::string(clean["status"].GetString()), "completed");
  bool found_train = false;
  for (const auto& d : clean["versions"]["data"].GetArray())
    if (std::string(d["path"].GetString()) == dir / "data/train.jsonl") {
      found_train = true;
      EXPECT_EQ(std::string(d["md5"].GetString()), md5sum(dir / "data/train.jsonl"));
    }
  EXPECT_TRUE(found_train);
  EXPECT_EQ(clean["results"]["steps"].GetInt64(), 3);
  const auto& t = clean["results"]["step_time"];
  EXPECT_GT(t["forward_s"].GetDouble(), 0);
  EXPECT_GT(t["backward_s"].GetDouble(), 0);
  EXPECT_LE(t["forward_s"].GetDouble() + t["backward_s"].GetDouble() + t["optimizer_s"].GetDouble(),
            t["step_s"].GetDouble() * 1.0001);
  EXPECT_EQ(clean["hyperparameters"]["train"]["max_steps"].GetInt64(), 3);

  test::write_text(dir / "exp.json", "{\"train\": {}}\n");
  auto dirty = run("0.0.2");
  EXPECT_TRUE(dirty["versions"]["git"]["dirty"].GetBool());
  ASSERT_EQ(dirty["versions"]["git"]["dirty_files"].Size(), 1u);
  EXPECT_EQ(std::string(dirty["versions"]["git"]["dirty_files"][0].GetString()), "exp.json");
  std::ifstream patch(dir / "out/0.0.2/diff.patch");
  std::stringstream patch_text;
  patch_text << patch.rdbuf();
  EXPECT_NE(patch_text.str().find("+{\"train\": {}}"), std::string::npos) << patch_text.str();
  git_repository_free(repo);
}

TEST(ExperimentRecord, OutsideGitAndCorruptedRecords) {
  test::TempDir dir;
  EXPECT_FALSE(core::read_git_state("/").found);
  std::filesystem::create_directories(dir / "out/9.9.9");
  test::write_text(dir / "out/9.9.9/record.json", "{ not json");
  std::vector<std::string> problems;
  auto records = core::list_records(dir / "out", &problems);
  EXPECT_TRUE(records.empty());
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_NE(problems[0].find("9.9.9/record.json: corrupted record"), std::string::npos);
}

namespace {

void write_record(const std::filesystem::path& out, const std::string& id, const std::string& lr, const std::string& val_loss,
                  const std::string& tokens_per_second) {
  std::filesystem::create_directories(out / id);
  test::write_text(out / id / "record.json",
                   R"({"schema": 1, "status": "completed", "experiment": {"id": ")" + id + R"("},
  "versions": {"plugin": {"name": "model_original", "version": "1.0.0"}, "git": {"short_commit": "abc", "dirty": false}},
  "hyperparameters": {"experiment": {"id": ")" + id + R"("}, "model": {"dim": 32}, "train": {"lr": )" + lr + R"(}},
  "results": {"steps": 10, "val_loss": )" + val_loss + R"(, "tokens_per_second": )" + tokens_per_second + "}}\n");
}

const core::ComparisonRow* find_row(const std::vector<core::ComparisonRow>& rows, const std::string& name) {
  for (const auto& r : rows)
    if (r.name == name) return &r;
  return nullptr;
}

}  // namespace

// Issue 32: runs from several --out folders compare side by side, and the table says where
// each is (exp serve --out out --out myexp/out answered "no record" for the second folder's).
TEST(RecordComparison, RunsFromSeveralFoldersSayWhichFolder) {
  test::TempDir dir;
  write_record(dir / "out", "1.0.0", "0.001", "2.5", "900");
  write_record(dir / "myexp/out", "2.0.0", "0.003", "2.25", "1000");
  const auto c = core::compare_runs({dir / "out/1.0.0", dir / "myexp/out/2.0.0"});
  EXPECT_EQ(c.ids, (std::vector<std::string>{"1.0.0", "2.0.0"}));
  const auto* folder = find_row(c.differences, "(folder)");
  ASSERT_NE(folder, nullptr);
  EXPECT_EQ(folder->values, (std::vector<std::string>{dir / "out", dir / "myexp/out"}));
  ASSERT_NE(find_row(c.results, "val loss"), nullptr);
  EXPECT_EQ(find_row(c.results, "val loss")->best, 1);
  const auto same = core::compare_records(dir / "out", {"1.0.0"});
  EXPECT_EQ(find_row(same.differences, "(folder)"), nullptr) << "one folder: not a difference";
}

TEST(RecordComparison, ShowsOnlyDifferencesAndMarksTheBest) {
  test::TempDir dir;
  write_record(dir / "out", "1.0.0", "0.001", "2.5", "900");
  write_record(dir / "out", "1.0.1", "0.003", "2.25", "1000");
  write_record(dir / "out", "1.0.2", "0.001", "2.75", "1000");
  const auto c = core::compare_records(dir / "out", {"1.0.0", "1.0.1", "1.0.2"});
  ASSERT_EQ(c.differences.size(), 1u);  // not model.dim, not the ids, not plugin or code
  EXPECT_EQ(c.differences[0].name, "train.lr");
  EXPECT_EQ(c.differences[0].values, (std::vector<std::string>{"0.001", "0.003", "0.001"}));
  const auto* val = find_row(c.results, "val loss");
  ASSERT_NE(val, nullptr);
  EXPECT_EQ(val->best, 1);  // lowest loss
  const auto* speed = find_row(c.results, "tokens/s");
  ASSERT_NE(speed, nullptr);
  EXPECT_EQ(speed->best, 1);  // highest throughput; the first of a tie
  const auto* steps = find_row(c.results, "steps");
  ASSERT_NE(steps, nullptr);
  EXPECT_EQ(steps->best, -1);  // not ranked
  const auto* recall = find_row(c.results, "fact recall %");
  ASSERT_NE(recall, nullptr);
  EXPECT_EQ(recall->values[0], "-");  // no value in these records
  const std::string table = core::format_comparison(c, false);
  EXPECT_NE(table.find("2.2500 *"), std::string::npos) << table;
  EXPECT_NE(core::format_comparison(c, true).find("| val loss | 2.5000 | **2.2500** | 2.7500 |"), std::string::npos);
  EXPECT_THROW(core::compare_records(dir / "out", {"1.0.0", "9.9.9"}), core::UserError);
}

TEST(ExperimentRecord, ResumedRunKeepsTheFirstLossSumsWallTimeAndReproducesFromScratch) {
  test::TempDir dir;
  test::write_text(dir / "exp.json", "{}\n");
  test::write_text(dir / "m.so", "a plugin's bytes, for its md5\n");
  auto segment = [&](const std::string& command_line, int64_t first_step, std::vector<double> losses, double wall) {
    core::RunDescription run;
    run.run_dir = dir / "out/0.0.1", run.id = "0.0.1", run.config_json = "{}", run.config_path = dir / "exp.json";
    run.command_line = command_line;
    core::PluginIdentity plugin;
    plugin.path = dir / "m.so", plugin.name = "m";
    core::ExperimentRecord record(run, plugin, core::runtime_info());
    core::RunResults r;
    r.first_step = first_step, r.steps = first_step + static_cast<int64_t>(losses.size()), r.losses = losses;
    r.wall_seconds = wall;
    record.finish(&r, first_step + static_cast<int64_t>(losses.size()) < 6 ? "interrupted" : "completed");
    return read_json(dir / "out/0.0.1/record.json");
  };
  segment("xlhost run -p m.so -c exp.json --set train.max_steps=6", 0, {5.0, 4.0}, 10);
  segment("xlhost run -p m.so -c exp.json --set train.max_steps=6 --resume", 2, {3.5, 3.0}, 7);
  const auto last = segment("xlhost run -p m.so -c exp.json --resume auto --set train.max_steps=6 --rewind-to 4", 4,
                            {2.5, 2.0}, 5);
  EXPECT_DOUBLE_EQ(last["results"]["first_loss"].GetDouble(), 5.0) << "the first segment's step 1";
  EXPECT_DOUBLE_EQ(last["results"]["final_loss"].GetDouble(), 2.0);
  EXPECT_DOUBLE_EQ(last["results"]["wall_seconds"].GetDouble(), 22.0) << "10 + 7 + 5 s";
  EXPECT_EQ(last["results"]["segments"].GetInt64(), 3);
  EXPECT_EQ(std::string(last["reproduce"]["command"].GetString()), "xlhost run -p m.so -c exp.json --set train.max_steps=6");
  EXPECT_NE(std::string(last["experiment"]["command_line"].GetString()).find("--resume auto"), std::string::npos)
      << "the command as run stays in the record";

  const auto fresh = segment("xlhost run -p m.so -c exp.json", 0, {6.0, 5.5, 5.0, 4.0, 3.0, 2.0}, 30);
  EXPECT_DOUBLE_EQ(fresh["results"]["first_loss"].GetDouble(), 6.0) << "a run from scratch starts its own record";
  EXPECT_DOUBLE_EQ(fresh["results"]["wall_seconds"].GetDouble(), 30.0);
  EXPECT_EQ(fresh["results"]["segments"].GetInt64(), 1);
}

TEST(RecordComparison, LossIsCrossEntropyWithTheAuxiliaryLossApart) {
  test::TempDir dir;
  test::write_text(dir / "exp.json", "{}\n");
  test::write_text(dir / "m.so", "plugin bytes\n");
  core::RunDescription run;
  run.run_dir = dir / "out/1.0.0", run.id = "1.0.0", run.config_json = "{}", run.config_path = dir / "exp.json";
  core::PluginIdentity plugin;
  plugin.path = dir / "m.so", plugin.name = "m";
  core::ExperimentRecord record(run, plugin, core::runtime_info());
  core::RunResults r;
  r.steps = 2, r.losses = {3.0, 2.0}, r.final_aux_loss = 0.5;
  record.finish(&r, "completed");
  const auto c = core::compare_records(dir / "out", {"1.0.0"});
  ASSERT_NE(find_row(c.results, "final train loss"), nullptr);
  EXPECT_EQ(find_row(c.results, "final train loss")->values[0], "2.0000") << "the cross-entropy, not 2.5";
  EXPECT_EQ(find_row(c.results, "plugin aux loss (apart)")->values[0], "0.5000");
}

TEST(RecordComparison, ABestIsMarkedOnlyBeyondTheSpreadOfSeeds) {
  test::TempDir dir;
  write_record(dir / "out", "1.0.0", "0.001", "2.50", "900");
  write_record(dir / "out", "1.0.1", "0.003", "2.40", "1000");
  write_record(dir / "out", "1.0.2", "0.003", "2.00", "1000");
  // Seed groups: 1.0.0 and 1.0.1 overlap (0.10 apart, spreads 0.08 + 0.05); 1.0.2 is 0.5 lower.
  for (const auto& [id, sd] : {std::pair{"1.0.0", "0.08"}, {"1.0.1", "0.05"}}) {
    auto text = core::read_text_file(dir / ("out/" + std::string(id) + "/record.json"));
    text.insert(text.rfind('}'), R"(, "seeds": [1, 2, 3], "results_std": {"val_loss": )" + std::string(sd) + "}");
    test::write_text(dir / ("out/" + std::string(id) + "/record.json"), text);
  }
  const auto close = core::compare_records(dir / "out", {"1.0.0", "1.0.1"});
  const auto* val = find_row(close.results, "val loss");
  ASSERT_NE(val, nullptr);
  EXPECT_EQ(val->values[0], "2.5000 ± 0.0800");
  EXPECT_EQ(val->best, -1) << "within the spread: no best";
  EXPECT_EQ(find_row(close.results, "seeds")->values, (std::vector<std::string>{"3", "3"}));
  const auto apart = core::compare_records(dir / "out", {"1.0.1", "1.0.2"});
  EXPECT_EQ(find_row(apart.results, "val loss")->best, 1) << "0.4 lower, beyond 0.05 + 0";
}
