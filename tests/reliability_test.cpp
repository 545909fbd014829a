// What a long run must survive: diverging steps, full disks, corrupt checkpoints and
// caches, reruns of an experiment id, and hostile input files. Each test reproduces one
// defect of the reliability issue (the comment names it) and fails on the code before it.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "test_support.hpp"
#include "xlhost/core/checkpoint/checkpoint.hpp"
#include "xlhost/core/checkpoint/safetensors.hpp"
#include "xlhost/core/data/json_lines.hpp"
#include "xlhost/core/data/knowledge_file.hpp"
#include "xlhost/core/data/token_data.hpp"
#include "xlhost/core/experiments/experiment_record.hpp"
#include "xlhost/core/experiments/train_log.hpp"
#include "xlhost/core/util/error.hpp"

using namespace xlhost;
using test::error_of;
namespace fs = std::filesystem;

namespace {

// The table after every step, to check that a skipped step changed nothing.
class TableRecorder : public core::TrainingObserver {
 public:
  void watch(sdk::Model& model) { table_ = dynamic_cast<test::BigramModel&>(model).table; }
  void on_step(const core::StepRecord& r) override {
    tables.push_back(table_.clone());
    if (r.skipped()) skipped.push_back(r.step), reasons.push_back(r.skip_reason);
  }
  std::vector<torch::Tensor> tables;  // tables[i]: after step i + 1
  std::vector<int64_t> skipped;
  std::vector<std::string> reasons;

 private:
  torch::Tensor table_;
};

struct GuardedRun {
  core::TrainSummary summary;
  TableRecorder recorder;
  std::string error;
};

std::unique_ptr<GuardedRun> run_bigram(const test::TempDir& dir, std::vector<std::string> overrides) {
  auto job = test::bigram_job(dir, std::move(overrides));
  auto run = std::make_unique<GuardedRun>();
  job.observers.push_back(&run->recorder);
  core::Trainer trainer(job);
  run->recorder.watch(trainer.model());
  try {
    run->summary = trainer.run();
  } catch (const core::UserError& e) {
    run->error = e.what();
  }
  return run;
}


std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void flip_byte(const fs::path& p, std::streamoff at) {
  std::fstream f(p, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(at);
  char c = 0;
  f.get(c);
  f.seekp(at);
  f.put(static_cast<char>(c ^ 0x5a));
}

}  // namespace

// Defect 3: a non-finite loss or gradient norm is never applied; parameters stay as they were.
TEST(Reliability, NonFiniteLossOrGradientIsSkippedAndCounted) {
  test::TempDir dir;
  test::write_tiny_corpus(dir);
  for (const std::string fault : {"nan_loss", "nan_grad"}) {
    auto run = run_bigram(dir, {"model.fault=" + fault, "model.fault_step=5", "model.fault_steps=2", "train.max_steps=12",
                                "experiment.id=" + fault});
    ASSERT_EQ(run->error, "") << fault;
    EXPECT_EQ(run->recorder.skipped, (std::vector<int64_t>{5, 6})) << fault;
    EXPECT_EQ(run->summary.skipped_steps, 2) << fault;
    EXPECT_TRUE(torch::equal(run->recorder.tables[3], run->recorder.tables[5])) << fault << ": steps 5, 6 changed the table";
    EXPECT_FALSE(torch::equal(run->recorder.tables[5], run->recorder.tables[6])) << fault << ": step 7 was applied";
    EXPECT_TRUE(torch::isfinite(run->recorder.tables.back()).all().item<bool>()) << fault;
    const auto log = core::read_train_log(fs::path(run->summary.run_dir) / "train.log");
    int skipped_lines = 0;
    for (const auto& s : log.steps) skipped_lines += s.skipped();
    EXPECT_EQ(skipped_lines, 2) << fault << ": train.log counts the skipped steps";
  }
}

// Defect 3: N bad steps in a row end the run as diverged, with a finite last checkpoint.
TEST(Reliability, ConsecutiveBadStepsStopTheRunAsDivergedKeepingAFiniteCheckpoint) {
  test::TempDir dir;
  test::write_tiny_corpus(dir);
  auto run = run_bigram(dir, {"model.fault=nan_grad", "model.fault_step=13", "model.fault_steps=1000",
                              "train.max_bad_steps=4", "train.checkpoint_interval=5", "train.max_steps=40"});
  EXPECT_NE(run->error.find("diverged: 4 steps in a row"), std::string::npos) << run->error;
  EXPECT_NE(run->error.find("--skip-batches 12:16"), std::string::npos) << run->error;
  EXPECT_EQ(run->recorder.tables.size(), 16u);  // 12 good steps, 4 skipped
  const auto checkpoint = core::resolve_checkpoint(dir / "out/0.0.1");
  EXPECT_EQ(core::read_checkpoint_state(checkpoint).step, 15);  // written before the fourth bad step
  const auto tensors = core::load_safetensors(checkpoint + "/model.safetensors");
  EXPECT_TRUE(torch::isfinite(tensors.at("table")).all().item<bool>());
  EXPECT_TRUE(torch::equal(tensors.at("table"), run->recorder.tables[11])) << "the checkpoint holds step 12's table";
}

// A loss far above the rolling mean + k sigma is skipped like a non-finite one.
TEST(Reliability, LossSpikeIsSkipped) {
  test::TempDir dir;
  test::write_tiny_corpus(dir);
  auto run = run_bigram(dir, {"model.fault=spike", "model.fault_step=30", "model.fault_steps=1", "train.spike_window=16",
                              "train.max_steps=34"});
  ASSERT_EQ(run->error, "");
  ASSERT_EQ(run->recorder.skipped, (std::vector<int64_t>{30}));
  EXPECT_NE(run->recorder.reasons[0].find("spike"), std::string::npos) << run->recorder.reasons[0];
  EXPECT_TRUE(torch::equal(run->recorder.tables[28], run->recorder.tables[29]));
}

// Defect 1: rerunning an experiment id without --resume, with fewer steps, keeps the new
// run's checkpoints (retention by run, then by step number) and `latest` points at them.
TEST(Reliability, RerunWithFewerStepsKeepsItsOwnCheckpoints) {
  test::TempDir dir;
  test::write_tiny_corpus(dir);
  ASSERT_EQ(run_bigram(dir, {"train.max_steps=40", "train.checkpoint_interval=10", "run.keep_checkpoints=3"})->error, "");
  auto rerun = run_bigram(dir, {"train.max_steps=15", "train.checkpoint_interval=5", "run.keep_checkpoints=3"});
  ASSERT_EQ(rerun->error, "");
  std::vector<std::string> names;
  for (const auto& c : core::list_checkpoints(dir / "out/0.0.1/checkpoints")) names.push_back(c.filename().string());
  EXPECT_EQ(names, (std::vector<std::string>{"step_00000015", "step_00000010", "step_00000005"}));
  EXPECT_EQ(core::read_checkpoint_state(core::resolve_checkpoint(dir / "out/0.0.1")).step, 15);
}

// Defect 2: a full disk while writing a checkpoint leaves the previous one and `latest`
// intact, no temporary folder, and an error naming the cause.
TEST(Reliability, FullDiskDuringACheckpointKeepsThePreviousOne) {
  test::TempDir dir;
  test::write_tiny_corpus(dir);
  auto job = test::bigram_job(dir);
  core::Trainer trainer(job);
  trainer.train_step();
  auto optimizer = torch::optim::AdamW(trainer.model().parameters());
  core::CheckpointState state;
  state.step = 1, state.plugin_name = "bigram";
  const std::string folder = dir / "ckpt";
  core::CheckpointWriter writer(folder, 3);
  const auto first = writer.write(trainer.model(), optimizer, state, "{}");
  const std::string latest_before = read_all(fs::path(folder) / "latest");

  // The process may write no file beyond 64 KiB: the 268 KB model file fails with EFBIG.
  struct rlimit saved {};
  getrlimit(RLIMIT_FSIZE, &saved);
  signal(SIGXFSZ, SIG_IGN);
  struct rlimit small = saved;
  small.rlim_cur = 64 << 10;
  setrlimit(RLIMIT_FSIZE, &small);
  state.step = 2;
  const auto error = error_of([&] { writer.write(trainer.model(), optimizer, state, "{}"); });
  setrlimit(RLIMIT_FSIZE, &saved);
  signal(SIGXFSZ, SIG_DFL);

  EXPECT_NE(error.find("not written (the previous one is kept)"), std::string::npos) << error;
  EXPECT_NE(error.find("File too large"), std::string::npos) << error;
  EXPECT_EQ(read_all(fs::path(folder) / "latest"), latest_before);
  EXPECT_EQ(core::resolve_checkpoint(folder), first);
  for (const auto& entry : fs::directory_iterator(folder))
    EXPECT_EQ(entry.path().filename().string().rfind(".tmp", 0), std::string::npos) << entry.path();
}

// Defect 4: a step written again (a resumed or rewound run) replaces the old directory
// without a moment in which the step has no complete checkpoint: a reader polling it
// while it is rewritten never finds it missing.
TEST(Reliability, RewritingAStepNeverLeavesItMissing) {
  test::TempDir dir;
  test::write_tiny_corpus(dir);
  core::Trainer trainer(test::bigram_job(dir));
  auto optimizer = torch::optim::AdamW(trainer.model().parameters());
  core::CheckpointState state;
  state.step = 1, state.plugin_name = "bigram";
  core::CheckpointWriter writer(dir / "ckpt", 3);
  const fs::path manifest = fs::path(writer.write(trainer.model(), optimizer, state, "{}")) / "manifest.json";
  std::atomic<bool> done{false};
  std::atomic<int> missing{0}, looks{0};
  std::thread reader([&] {
    while (!done) missing += !fs::exists(manifest), ++looks;
  });
  for (int i = 0; i < 50; ++i) writer.write(trainer.model(), optimizer, state, "{}");
  done = true;
  reader.join();
  EXPECT_EQ(missing, 0) << "of " << looks << " looks";
  EXPECT_EQ(core::verify_checkpoint(manifest.parent_path()), "");
}

// Defect 13: a corrupt newest checkpoint is refused when named and skipped, with a
// warning, when the run is resumed; the older valid one is used.
TEST(Reliability, CorruptCheckpointIsDetectedAndSkipped) {
  test::TempDir dir;
  test::write_tiny_corpus(dir);
  ASSERT_EQ(run_bigram(dir, {"train.max_steps=20", "train.checkpoint_interval=10"})->error, "");
  const fs::path newest = dir / "out/0.0.1/checkpoints/step_00000020";
  for (int i = 0; i < 50; ++i) flip_byte(newest / "model.safetensors", 4096 + 997 * i);
  EXPECT_NE(error_of([&] { core::resolve_checkpoint(newest.string()); }).find("does not match its checksum"),
            std::string::npos);
  std::ostringstream warnings;
  EXPECT_EQ(fs::path(core::resolve_checkpoint(dir / "out/0.0.1", &warnings)).filename(), "step_00000010");
  EXPECT_NE(warnings.str().find("skipping checkpoint " + newest.string()), std::string::npos) << warnings.str();
}

// Defect 5: an experiment id is one path component; `latest` cannot point outside.
TEST(Reliability, ExperimentIdAndLatestCannotLeaveTheOutputFolder) {
  test::TempDir dir;
  for (const std::string& id : std::vector<std::string>{"../../x", "/tmp/abs", "", "a/b", std::string(5000, 'a')}) {
    const auto error = error_of([&] {
      core::Options::from(core::Config::parse("{}", "t", core::full_schema({}), {"experiment.id=" + id}));
    });
    EXPECT_NE(error.find("experiment.id:"), std::string::npos) << id.substr(0, 20) << ": " << error;
  }
  test::write_tiny_corpus(dir);
  ASSERT_EQ(run_bigram(dir, {"train.max_steps=10", "train.checkpoint_interval=5"})->error, "");
  test::write_text(dir / "out/0.0.1/checkpoints/latest", "/etc\n");
  std::ostringstream warnings;
  EXPECT_EQ(fs::path(core::resolve_checkpoint(dir / "out/0.0.1", &warnings)).filename(), "step_00000010");
  EXPECT_NE(warnings.str().find("not a step_N name"), std::string::npos) << warnings.str();
}

// Defect 6: state.json and safetensors headers are read with type checks.
TEST(Reliability, MangledCheckpointFilesAreErrorsNotCrashes) {
  test::TempDir dir;
  for (const std::string state : {R"({"micro_batches": 1})", R"({"step": -3})", R"({"step": "sixty"})", "[1]"}) {
    test::write_text(dir / "state.json", state);
    const auto error = error_of([&] { core::read_checkpoint_state(dir.path().string()); });
    EXPECT_NE(error.find("state.json"), std::string::npos) << state << ": " << error;
  }
  auto header_file = [&](const std::string& header) {
    std::string h = header;
    std::ofstream out(dir / "t.safetensors", std::ios::binary);
    const uint64_t n = h.size();
    out.write(reinterpret_cast<const char*>(&n), 8);
    out << h << std::string(64, '\0');
  };
  for (const std::string header :
       {R"({"t":{"dtype":"F32","shape":[2],"data_offsets":["a","b"]}})", R"({"t":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})",
        R"({"t":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}})",
        R"({"t":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})",
        R"({"t":{"dtype":7,"shape":[2],"data_offsets":[0,8]}})", R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0]}})"}) {
    header_file(header);
    const auto error = error_of([&] { core::load_safetensors(dir / "t.safetensors"); });
    EXPECT_NE(error.find("tensor 't'"), std::string::npos) << header << ": " << error;
  }
}

// Defect 7: JSON nested a million deep is an error (or a skipped line), not a stack overflow.
TEST(Reliability, DeeplyNestedJsonIsAnError) {
  test::TempDir dir;
  const std::string deep = std::string(1000000, '[') + std::string(1000000, ']');
  test::write_text(dir / "c.json", "{\"train\": " + deep + "}");
  EXPECT_NE(error_of([&] { core::Config::load(dir / "c.json", core::full_schema({})); }).find("nested deeper"),
            std::string::npos);
  test::write_text(dir / "d.jsonl", "{\"text\": \"ok\"}\n" + deep + "\n");
  std::vector<std::string> texts;
  const auto report = core::read_json_lines(dir / "d.jsonl", true, [&](const std::string& t) { texts.push_back(t); });
  EXPECT_EQ(report.skipped, 1u);
  EXPECT_EQ(texts.size(), 1u);
  test::write_text(dir / "k.json", deep);
  EXPECT_NE(error_of([&] { core::read_knowledge_entries(dir / "k.json"); }).find("nested deeper"), std::string::npos);
}

// Defect 9: devices, FIFOs and folders as data files are errors at once, not hangs.
TEST(Reliability, DataPathsThatAreNotFilesAreRefused) {
  test::TempDir dir;
  test::write_tiny_corpus(dir);
  ASSERT_EQ(::mkfifo((dir / "fifo").c_str(), 0644), 0);
  core::ByteTokenizer tok;
  std::ostringstream log;
  for (const std::string& path : {std::string("/dev/zero"), dir / "fifo", dir.path().string(), std::string("/dev/null")}) {
    const auto error = error_of([&] { core::TokenFile::open_or_build(path, tok, dir / "cache", false, log); });
    EXPECT_TRUE(error.find("not a regular file") != std::string::npos || error.find("is a directory") != std::string::npos)
        << path << ": " << error;
  }
  test::write_text(dir / "a_file", "x");
  auto job_error = error_of([&] { core::Trainer(test::bigram_job(dir, {"run.out_dir=" + dir / "a_file"})); });
  EXPECT_NE(job_error.find("cannot create the run folder"), std::string::npos) << job_error;
}

// Defect 9: folders the run cannot write to are one clear error, naming the folder. Root
// may write anywhere, so as root (CI) the checks run with the effective user `nobody`.
TEST(ReliabilityDeathTest, UnwritableFoldersAreNamed) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");  // a fresh process, not a fork of this one
  test::TempDir dir;
  test::write_tiny_corpus(dir);
  fs::create_directories(dir / "out/0.0.1");
  fs::create_directories(dir / "cache");
  fs::create_directory(dir / "locked");
  const auto read_only = fs::perms::owner_read | fs::perms::owner_exec | fs::perms::group_read |
                         fs::perms::group_exec | fs::perms::others_read | fs::perms::others_exec;
  const std::vector<std::string> locked = {dir / "locked", dir / "out/0.0.1"};
  for (const auto& folder : locked) fs::permissions(folder, read_only);
  fs::permissions(dir.path(), read_only | fs::perms::owner_write);
  fs::permissions(dir / "cache", fs::perms::all);
  fs::permissions(dir / "out", fs::perms::all);
  auto errors = [&] {
    std::string all;
    for (const std::vector<std::string>& overrides :
         {std::vector<std::string>{"run.out_dir=" + dir / "locked"}, {"data.cache_dir=" + dir / "locked/cache"},
          {"experiment.id=0.0.1"}})
      all += error_of([&] { core::Trainer(test::bigram_job(dir, overrides)).run(); }) + "\n";
    return all;
  };
  EXPECT_EXIT(
      {
        constexpr uid_t kNobody = 65534;
        const bool root = geteuid() == 0;
        if (root && (setegid(kNobody) != 0 || seteuid(kNobody) != 0)) std::_Exit(99);
        const std::string found = errors();
        if (root && (seteuid(0) != 0 || setegid(0) != 0)) std::_Exit(98);
        for (const auto& folder : locked) fs::permissions(folder, fs::perms::owner_all);
        fs::remove_all(dir.path());  // this process's own copy of the folder: it exits without destructors
        std::cerr << found;
        std::_Exit(0);
      },
      testing::ExitedWithCode(0),
      "locked/0.0.1: cannot create the run folder \\(Permission denied\\)\n"
      ".*locked/cache: cannot create the token cache \\(data.cache_dir\\) folder \\(Permission denied\\)\n"
      ".*out/0.0.1: the run folder is not writable\n");
  for (const auto& folder : locked) fs::permissions(folder, fs::perms::owner_all);
}

// Defect 10: a corrupt or truncated token cache is rebuilt, not used.
TEST(Reliability, CorruptTokenCacheIsRebuilt) {
  test::TempDir dir;
  test::write_tiny_corpus(dir);
  core::ByteTokenizer tok;
  std::ostringstream log;
  const auto good = core::TokenFile::open_or_build(dir / "data/train.jsonl", tok, dir / "cache", false, log);
  const std::string cache = good.path();
  const int64_t token = good[500];
  flip_byte(cache, 1000);
  std::ostringstream rebuild_log;
  auto rebuilt = core::TokenFile::open_or_build(dir / "data/train.jsonl", tok, dir / "cache", false, rebuild_log);
  EXPECT_NE(rebuild_log.str().find("does not match its checksum"), std::string::npos) << rebuild_log.str();
  EXPECT_EQ(rebuilt[500], token);
  fs::resize_file(cache, fs::file_size(cache) / 2);
  std::ostringstream truncated_log;
  auto again = core::TokenFile::open_or_build(dir / "data/train.jsonl", tok, dir / "cache", false, truncated_log);
  EXPECT_NE(truncated_log.str().find("rebuilding"), std::string::npos);
  EXPECT_EQ(again.size(), good.size());
}

// Defect 11: a stop requested before the first step ends the run cleanly with nothing saved.
TEST(Reliability, StopBeforeTheFirstStepIsACleanExit) {
  test::TempDir dir;
  test::write_tiny_corpus(dir);
  auto job = test::bigram_job(dir);
  job.should_stop = [](int64_t) { return true; };
  const auto s = core::Trainer(job).run();
  EXPECT_TRUE(s.interrupted);
  EXPECT_EQ(s.steps, 0);
  EXPECT_FALSE(fs::exists(dir / "out/0.0.1/checkpoints/latest"));
}

// Defect 12: data too small for one evaluation batch is found before training, by name.
TEST(Reliability, ValFileTooSmallIsNamedBeforeTraining) {
  test::TempDir dir;
  test::write_tiny_corpus(dir);
  test::write_text(dir / "small.jsonl", "{\"text\": \"tiny\"}\n");
  const auto error = error_of([&] { core::Trainer(test::bigram_job(dir, {"data.val_path=" + dir / "small.jsonl"})); });
  EXPECT_NE(error.find(dir / "small.jsonl"), std::string::npos) << error;
}

// Defect 12: a run that trains nothing puts back the finished record it replaced.
TEST(Reliability, RunThatTrainsNothingKeepsTheEarlierRecord) {
  test::TempDir dir;
  core::RunDescription run;
  run.run_dir = dir / "out/1.0.0", run.id = "1.0.0", run.config_path = dir / "exp.json", run.config_json = "{}";
  core::PluginIdentity plugin{dir / "exp.json", "bigram", "0.1", "2.15", 1};
  test::write_text(dir / "exp.json", "{}");
  core::RunResults results;
  results.steps = 40, results.losses = {3.0, 1.25};
  core::ExperimentRecord(run, plugin, core::RuntimeInfo{}).finish(&results, "completed");
  const std::string finished = read_all(dir / "out/1.0.0/record.json");
  core::ExperimentRecord rerun(run, plugin, core::RuntimeInfo{});
  EXPECT_NE(read_all(dir / "out/1.0.0/record.json"), finished) << "the rerun is recorded as running";
  EXPECT_TRUE(rerun.restore_previous());
  EXPECT_EQ(read_all(dir / "out/1.0.0/record.json"), finished);
  EXPECT_EQ(core::read_record_summary(dir / "out/1.0.0").status, "completed");
}

// Defect 8: a truncated plugin is refused before dlopen maps it (which faulted, SIGBUS).
TEST(Reliability, TruncatedPluginIsRefused) {
  test::TempDir dir;
  const auto size = fs::file_size(test::plugin_path("model_original"));
  for (const auto keep : {size / 2, size - 4096, uint64_t{100}}) {
    fs::copy_file(test::plugin_path("model_original"), dir / "cut.so", fs::copy_options::overwrite_existing);
    fs::resize_file(dir / "cut.so", keep);
    const auto error = error_of([&] { core::load_plugin(dir / "cut.so"); });
    EXPECT_NE(error.find("cut.so: cannot load as a shared object"), std::string::npos) << keep << ": " << error;
  }
}

// Defect 8: flipped bytes anywhere in a plugin are found before it loads, by the checksum
// its build wrote beside it; without that file the plugin loads as before.
TEST(Reliability, PluginDamagedSinceItsBuildIsRefused) {
  test::TempDir dir;
  const std::string plugin = test::plugin_path("model_original");
  fs::copy_file(plugin, dir / "copy.so");
  fs::copy_file(plugin + ".md5", dir / "copy.so.md5");
  EXPECT_TRUE(core::load_plugin(dir / "copy.so").checksum_verified());
  fs::rename(dir / "copy.so.md5", dir / "aside.md5");
  EXPECT_FALSE(core::load_plugin(dir / "copy.so").checksum_verified());
  fs::rename(dir / "aside.md5", dir / "copy.so.md5");
  flip_byte(dir / "copy.so", static_cast<std::streamoff>(fs::file_size(dir / "copy.so") / 2));
  const auto error = error_of([&] { core::load_plugin(dir / "copy.so"); });
  EXPECT_NE(error.find("copy.so: damaged: its MD5 is"), std::string::npos) << error;
  EXPECT_NE(error.find("copy.so.md5"), std::string::npos) << error;
}

// Defect 8: a plugin whose initialisation crashes is reported, the host survives.
TEST(Reliability, PluginThatCrashesWhileLoadingIsReported) {
  const auto error = error_of([] { core::load_plugin(std::string(XLHOST_TEST_PLUGIN_DIR) + "/crash_on_load_plugin.so"); });
  // the signal is SIGSEGV; under AddressSanitizer its handler turns it into an abort
  EXPECT_NE(error.find("loading it crashed with"), std::string::npos) << error;
}

// After a divergence: rewinding and passing over the data of the bad steps.
TEST(Reliability, SkipBatchesPassesOverTheDataRange) {
  test::TempDir dir;
  test::write_tiny_corpus(dir);
  auto job = test::bigram_job(dir, {"train.max_steps=10"});
  job.skip_batches_first = 2, job.skip_batches_end = 5;
  const auto s = core::Trainer(job).run();
  EXPECT_EQ(core::read_checkpoint_state(s.checkpoint).micro_batches, 13);  // 10 steps + 3 batches passed over
}
