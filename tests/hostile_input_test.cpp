// Issue 28's regressions (reliability, round two): each test failed on the code before its
// fix. Defect numbers are the issue's.
#include <caffe2/serialize/inline_container.h>
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include "http_get.hpp"
#include "test_support.hpp"
#include "xlhost/core/checkpoint/checkpoint.hpp"
#include "xlhost/core/checkpoint/safetensors.hpp"
#include "xlhost/core/checkpoint/torch_state_dict.hpp"
#include "xlhost/core/data/bpe_trainer.hpp"
#include "xlhost/core/http/http_server.hpp"

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

// Found by fuzz_torch_pickle: a BINUNICODE whose 4-byte length (here 1.9 GB) runs past the
// end of data.pkl made LibTorch's unpickler reserve that much before reading a byte.
// And a LONG_BINPUT naming memo entry 1.7 billion made it grow its memo table to 28 GB.
TEST(HostileInput, APickleLengthOrMemoIndexBeyondThePickleIsRefused) {
  test::TempDir dir;
  const std::vector<std::pair<std::string, std::string>> pickles = {
      {std::string("\x80\x02X") + std::string("\x15\x00\x00\x74", 4) + "abc", "runs past the end of the pickle"},
      {std::string("\x80\x02)rfbui."), "memo index 1769300582 after 0 memo entries"}};
  for (const auto& [pickle, expected] : pickles) {
    {
      caffe2::serialize::PyTorchStreamWriter writer(dir / "m.pth");
      writer.writeRecord("data.pkl", pickle.data(), pickle.size());
      writer.writeEndOfFile();
    }
    const auto error = test::error_of([&] { core::load_torch_state_dict(dir / "m.pth"); });
    EXPECT_NE(error.find(expected), std::string::npos) << error;
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

namespace {

// Connects, asks for "/", then reads 1 KiB every half second for `seconds` (a slow reader).
void read_slowly(int port, double seconds) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  int small = 4096;  // a small receive buffer, so the server's sends block on this client
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
    const std::string request = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    send(fd, request.data(), request.size(), MSG_NOSIGNAL);
    char buffer[1024];
    const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (std::chrono::steady_clock::now() < until && recv(fd, buffer, sizeof buffer, 0) > 0)
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  close(fd);
}

}  // namespace

// Issue 28, HTTP limits: 16 clients that read their 8 MiB answers a trickle at a time held
// all 16 workers for as long as they kept reading (every later request: 503). Now each is
// cut off at the write deadline (10 s), and the server answers others again.
TEST(HostileInput, SlowReadersDoNotHoldTheServersWorkers) {
  const std::string big(8 << 20, 'x');
  core::http::Server server(core::http::ListenAddress{"127.0.0.1", 0}, "test",
                            [&](const std::string&) { return core::http::response(200, "text/plain", big); });
  std::vector<std::thread> readers;
  for (int i = 0; i < 16; ++i) readers.emplace_back(read_slowly, server.port(), 25.0);
  std::this_thread::sleep_for(std::chrono::seconds(1));
  EXPECT_EQ(test::http_get(server.port(), "/").rfind("HTTP/1.1 503", 0), 0u) << "16 slow readers hold every worker";
  std::this_thread::sleep_for(std::chrono::seconds(11));
  const auto answer = test::http_get(server.port(), "/");
  EXPECT_EQ(answer.rfind("HTTP/1.1 200", 0), 0u) << answer.substr(0, 80);
  for (auto& r : readers) r.join();
}

// Issue 28, HTTP limits: an answer beyond 64 MiB is not sent; the client learns why.
TEST(HostileInput, AnOversizedAnswerIsRefusedWithItsSize) {
  core::http::Server server(core::http::ListenAddress{"127.0.0.1", 0}, "test",
                            [](const std::string&) { return std::string((64 << 20) + 1, 'x'); });
  const auto answer = test::http_get(server.port(), "/");
  EXPECT_EQ(answer.rfind("HTTP/1.1 500", 0), 0u) << answer.substr(0, 80);
  EXPECT_NE(answer.find("more than the server's limit"), std::string::npos) << answer.substr(0, 200);
}
