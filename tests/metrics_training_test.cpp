// The metrics endpoint while a real training run is going: valid for promtool, and
// unharmed (as is training) by bad HTTP input, slow clients and many parallel scrapes.
#include <gtest/gtest.h>

#include <fstream>
#include <future>
#include <sstream>
#include <thread>

#include "http_get.hpp"
#include "test_support.hpp"
#include "xlhost/core/metrics/metrics_server.hpp"
#include "xlhost/core/train/trainer.hpp"

using namespace xlhost;

namespace {

double metric_value(const std::string& text, const std::string& series) {
  auto at = text.find("\n" + series + " ");
  return at == std::string::npos ? -1 : std::stod(text.substr(at + series.size() + 2));
}

// Holds the training at one step until the test lets it go, so that the bad clients meet a
// running training however fast the steps are (300 steps took under 3 s once the CPU
// kernels landed, and the clients then met a finished run).
class HoldAtStep final : public core::TrainingObserver {
 public:
  explicit HoldAtStep(int64_t step) : step_(step), released_(release_.get_future()) {}
  void on_step(const core::StepRecord& r) override {
    if (r.step == step_) released_.wait_for(std::chrono::seconds(120));  // bounded: a failed test still ends
  }
  void release() { release_.set_value(); }

 private:
  int64_t step_;
  std::promise<void> release_;
  std::future<void> released_;
};

}  // namespace

TEST(MetricsDuringTraining, PromtoolCleanAndRobustToBadClients) {
  test::TempDir dir;
  test::write_tiny_corpus(dir);
  core::metrics::Registry registry;
  core::metrics::MetricsServer server(registry, core::metrics::parse_listen_address("127.0.0.1:0", "test"));
  core::TrainJob job;
  const auto plugin = core::load_plugin(test::plugin_path("model_original"));
  job.model = core::model_source(plugin);
  job.config = test::tiny_config(plugin, dir, {"train.max_steps=300", "train.log_interval=1", "train.threads=1"});
  const auto metrics = core::run_metrics(job.config, "model_original", 0, registry);
  job.observers.push_back(metrics.get());
  HoldAtStep hold(10);  // after the metrics observer: the endpoint shows step 10 while held
  job.observers.push_back(&hold);
  std::ostringstream log;
  job.log = &log;
  core::TrainSummary summary;
  std::thread trainer([&] { summary = core::train(job); });

  const std::string series = "xl_train_step{experiment=\"0.0.1\",plugin=\"model_original\",rank=\"0\"}";
  std::string text;
  for (int i = 0; i < 600 && metric_value(text, series) < 10; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    text = test::body_of(test::http_get(server.port(), "/metrics"));
  }
  if (metric_value(text, series) != 10) {
    hold.release();
    trainer.join();
    FAIL() << "training was not held at step 10:\n" << text;
  }

  {
    std::ofstream(dir / "scrape.txt") << text;
    const int rc = std::system(("promtool check metrics < " + dir / "scrape.txt" + " > " + dir / "promtool.txt" + " 2>&1").c_str());
    std::ifstream out(dir / "promtool.txt");
    std::stringstream complaints;
    complaints << out.rdbuf();
    EXPECT_EQ(rc, 0) << complaints.str();
    EXPECT_EQ(complaints.str(), "") << "promtool complaints:\n" << complaints.str();
  }

  // A client that connects and never finishes its request ...
  int slow = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(server.port()));
  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  ASSERT_EQ(connect(slow, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  send(slow, "GET /metr", 9, MSG_NOSIGNAL);
  // ... oversized headers, unknown paths, and a burst of parallel scrapes meanwhile.
  EXPECT_EQ(test::http_exchange(server.port(), "GET /metrics HTTP/1.1\r\nX-Big: " + std::string(64 * 1024, 'a') + "\r\n\r\n")
                .rfind("HTTP/1.1 431", 0),
            0u);
  EXPECT_EQ(test::http_get(server.port(), "/../../etc/passwd").rfind("HTTP/1.1 404", 0), 0u);
  std::atomic<int> ok{0}, refused{0};
  std::vector<std::thread> scrapers;
  for (int i = 0; i < 12; ++i)
    scrapers.emplace_back([&] {
      auto r = test::http_get(server.port(), "/metrics");
      if (r.rfind("HTTP/1.1 200", 0) == 0 && r.find("xl_train_loss") != std::string::npos) ++ok;
      else if (r.rfind("HTTP/1.1 503", 0) == 0) ++refused;
    });
  for (auto& s : scrapers) s.join();
  text = test::body_of(test::http_get(server.port(), "/metrics"));
  EXPECT_EQ(metric_value(text, series), 10) << "the bad clients should have met a running training";
  hold.release();
  EXPECT_EQ(ok + refused, 12);
  EXPECT_GE(ok, 10) << "parallel scrapes must be served while a slow client holds a connection";

  trainer.join();
  close(slow);
  EXPECT_EQ(summary.steps, 300) << "training must finish undisturbed";
  text = test::body_of(test::http_get(server.port(), "/metrics"));
  EXPECT_EQ(metric_value(text, series), 300);
  EXPECT_EQ(metric_value(text, "xl_train_steps_total{experiment=\"0.0.1\",plugin=\"model_original\",rank=\"0\"}"), 300);
  EXPECT_GT(metric_value(text, "xl_eval_loss{experiment=\"0.0.1\",plugin=\"model_original\",rank=\"0\"}"), 0);
  const double mfu = metric_value(text, "xl_train_mfu_ratio{experiment=\"0.0.1\",plugin=\"model_original\",rank=\"0\"}");
  EXPECT_GT(mfu, 0);
  EXPECT_LT(mfu, 1);
}
