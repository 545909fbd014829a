// Issue 28's regressions (reliability, round two): each test failed on the code before its
// fix. Defect numbers are the issue's.
#include <caffe2/serialize/inline_container.h>
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include "test_support.hpp"
#include "xlhost/core/checkpoint/checkpoint.hpp"
#include "xlhost/core/checkpoint/safetensors.hpp"
#include "xlhost/core/checkpoint/torch_state_dict.hpp"
#include "xlhost/core/data/bpe_trainer.hpp"

using namespace xlhost;
namespace fs = std::filesystem;

// Defect 6: an empty tensor of absurd extents ([0, 2^62, 2^62]) made LibTorch's stride
// computation overflow: an internal error (exit 3) instead of a refusal naming the tensor.
TEST(HostileInput, SafetensorsShapeWhoseStridesOverflowIsRefusedByName) {
  test::TempDir dir;
  const std::string header = R"({"t":{"dtype":"F32","shape":[0,4611686018427387904,4611686018427387904],"data_offsets":[0,0]}})";
  {
    std::ofstream out(dir / "t.safetensors", std::ios::binary);
    const uint64_t n = header.size();
    out.write(reinterpret_cast<const char*>(&n), 8);
    out << header;
  }
  try {
    core::load_safetensors(dir / "t.safetensors");
    ADD_FAILURE() << "loaded";
  } catch (const core::UserError& e) {
    EXPECT_NE(std::string(e.what()).find("tensor 't'"), std::string::npos) << e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not a user error: " << e.what();
  }
}

// Defect 10: pruning removed an old step folder in place, so a kill (or a reader) in the
// middle found a step_N without some of its files. A reader polling while 40 checkpoints
// are written with keep 1 must never see a listed step folder that exists but is incomplete.
TEST(HostileInput, PruningNeverLeavesAnIncompleteStepFolder) {
  test::TempDir dir;
  test::write_tiny_corpus(dir);
  core::Trainer trainer(test::bigram_job(dir));
  auto optimizer = torch::optim::AdamW(trainer.model().parameters());
  core::CheckpointState state;
  state.plugin_name = "bigram";
  core::CheckpointWriter writer(dir / "ckpt", 1);
  std::atomic<bool> done{false};
  std::atomic<int> incomplete{0}, looks{0};
  std::thread reader([&] {
    while (!done) {
      for (const auto& step : core::list_checkpoints(dir / "ckpt")) {
        const core::CheckpointFolder folder(step);
        std::error_code ec;
        const bool exists = fs::exists(folder.root(), ec);
        const bool whole = fs::exists(folder.weights(), ec) && fs::exists(folder.state(), ec) &&
                           fs::exists(folder.optimizer(), ec) && fs::exists(folder.manifest(), ec);
        if (exists && !whole && fs::exists(folder.root(), ec)) ++incomplete;  // still there, files gone
      }
      ++looks;
    }
  });
  for (int step = 1; step <= 40; ++step) {
    state.step = step;
    writer.write(trainer.model(), optimizer, state, "{}");
  }
  done = true;
  reader.join();
  EXPECT_EQ(incomplete, 0) << "of " << looks << " looks";
  EXPECT_EQ(core::list_checkpoints(dir / "ckpt").size(), 1u);
  for (const auto& entry : fs::directory_iterator(dir / "ckpt"))
    EXPECT_EQ(entry.path().filename().string().rfind(".pruned-", 0), std::string::npos) << entry.path();
}

// Defect 13: a run whose every step was skipped (here a NaN loss from the first step, in a
// run shorter than train.max_bad_steps) ended "completed" with exit 0; it is diverged.
TEST(HostileInput, RunWhoseEveryStepWasSkippedEndsDiverged) {
  test::TempDir dir;
  test::write_tiny_corpus(dir);
  auto job = test::bigram_job(dir, {"model.fault=nan_loss", "model.fault_step=1", "model.fault_steps=100",
                                    "train.max_steps=3"});
  const auto error = test::error_of([&] { core::train(job); });
  EXPECT_NE(error.find("diverged: 3 steps in a row skipped"), std::string::npos) << error;
}

// Defect 5: a torch.save archive whose data.pkl nests values millions deep (2,000,000
// TUPLE1s on an empty tuple; a million MARKs closed by a million TUPLEs) crashed
// --init-from with SIGSEGV in LibTorch's recursive unpickler.
TEST(HostileInput, DeeplyNestedPickleIsRefusedNotACrash) {
  test::TempDir dir;
  const std::vector<std::string> pickles = {
      std::string("\x80\x02)") + std::string(2000000, '\x85') + ".",
      std::string("\x80\x02") + std::string(1000000, '(') + std::string(1000000, 't') + "."};
  for (const auto& pickle : pickles) {
    {
      caffe2::serialize::PyTorchStreamWriter writer(dir / "m.pth");
      writer.writeRecord("data.pkl", pickle.data(), pickle.size());
      writer.writeEndOfFile();
    }
    const auto error = test::error_of([&] { core::load_torch_state_dict(dir / "m.pth"); });
    EXPECT_NE(error.find("nested deeper than"), std::string::npos) << error;
  }
}

// Defect 8: a full disk cut train.log mid-line while training went on to the end,
// unnoticed. Here train.log leads to /dev/full (every write fails with ENOSPC): the run
// stops at its first logged step (step 1) with a line naming the file, and trains no further.
TEST(HostileInput, ALogWriteThatFailsStopsTheRunAndSaysWhere) {
  test::TempDir dir;
  test::write_tiny_corpus(dir);
  const core::RunDirectory run(dir / "out", "full");
  fs::create_directories(run.root());
  fs::create_symlink("/dev/full", run.train_log());
  auto job = test::bigram_job(dir, {"experiment.id=full", "train.max_steps=20", "train.checkpoint_interval=5"});
  const auto error = test::error_of([&] { core::train(job); });
  EXPECT_NE(error.find("train.log: cannot write (No space left on device); the run stops here"), std::string::npos)
      << error;
  EXPECT_TRUE(core::list_checkpoints(run.checkpoints()).empty()) << "training went on after the failed write";
}

// Defect 13: `tokenizer train --skip-malformed` stopped at a line of invalid UTF-8 with "text
// is not valid UTF-8 (at byte 4)", naming neither file nor line. Such a line is malformed:
// skipped with skip_malformed, otherwise refused by file and line.
TEST(HostileInput, InvalidUtf8InATokenizerCorpusIsAMalformedLine) {
  test::TempDir dir;
  test::write_text(dir / "corpus.jsonl", "{\"text\": \"hello world\"}\n{\"text\": \"bad \xff\xfe bytes\"}\n"
                                         "{\"text\": \"more words here\"}\n");
  core::BpeTrainingOptions o;
  o.corpus = {dir / "corpus.jsonl"};
  o.vocab_size = 270, o.special = {"<|endoftext|>"}, o.skip_malformed = true;
  core::BpeTrainingReport report;
  EXPECT_EQ(test::error_of([&] { core::train_bpe(o, test::discard(), &report); }), "(no error)");
  EXPECT_EQ(report.documents, 2u) << "the bad line is skipped";
  o.skip_malformed = false;
  const auto error = test::error_of([&] { core::train_bpe(o, test::discard()); });
  EXPECT_NE(error.find("corpus.jsonl:2"), std::string::npos) << error;
  EXPECT_NE(error.find("not valid UTF-8"), std::string::npos) << error;
}
