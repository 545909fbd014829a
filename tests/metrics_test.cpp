#include <gtest/gtest.h>

#include <thread>

#include "http_get.hpp"
#include "xlhost/core/metrics/metrics_registry.hpp"
#include "xlhost/core/metrics/metrics_server.hpp"
#include "xlhost/core/metrics/training_metrics.hpp"
#include "xlhost/core/util/error.hpp"

using namespace xlhost::core;
namespace test = xlhost::test;
using metrics::Registry;

TEST(MetricsText, LabelValuesAreEscaped) {
  Registry r;
  r.gauge("xl_test_value", "A test gauge.", {{"path", "C:\\dir \"quoted\"\nnext"}}).set(1);
  const auto text = r.serialize();
  EXPECT_NE(text.find(R"(xl_test_value{path="C:\\dir \"quoted\"\nnext"} 1)"), std::string::npos) << text;
  EXPECT_EQ(metrics::escape_label_value("a\\b"), "a\\\\b");
}

TEST(MetricsText, HelpTypeAndValues) {
  Registry r;
  r.counter("xl_events_total", "Events seen.\nSecond line.", {{"rank", "0"}}).increment(3);
  const auto text = r.serialize();
  EXPECT_NE(text.find("# HELP xl_events_total Events seen.\\nSecond line.\n# TYPE xl_events_total counter\n"
                      "xl_events_total{rank=\"0\"} 3\n"),
            std::string::npos)
      << text;
}

TEST(MetricsText, GaugeHasNoSampleUntilSet) {
  Registry r;
  auto& g = r.gauge("xl_test_loss", "A loss not measured yet.");
  EXPECT_EQ(r.serialize(), "# HELP xl_test_loss A loss not measured yet.\n# TYPE xl_test_loss gauge\n");
  g.set(0);
  EXPECT_NE(r.serialize().find("\nxl_test_loss 0\n"), std::string::npos) << "a measured 0 is a sample";
}

TEST(MetricsText, EvaluationGaugesAreAbsentBeforeTheFirstEvaluation) {
  Registry r;
  TrainingMetrics m(r, {{"rank", "0"}});
  for (const char* name : {"xl_eval_loss{", "xl_eval_perplexity{", "xl_eval_fact_recall_ratio{", "xl_train_loss{"})
    EXPECT_EQ(r.serialize().find(name), std::string::npos) << name << " before it was measured";
  EvalResult eval;
  eval.loss = 2.5, eval.perplexity = 12.18, eval.tokens = 100;
  m.on_eval(5, eval);
  EXPECT_NE(r.serialize().find("xl_eval_loss{rank=\"0\"} 2.5\n"), std::string::npos) << r.serialize();
  EXPECT_EQ(r.serialize().find("xl_eval_fact_recall_ratio{"), std::string::npos);
}

TEST(MetricsText, HistogramBucketsAreCumulative) {
  Registry r;
  auto& h = r.histogram("xl_latency_seconds", "Latency.", {0.1, 1.0, 10.0});
  for (double v : {0.05, 0.1, 0.5, 2.0, 50.0}) h.observe(v);
  const auto text = r.serialize();
  for (const char* line : {"xl_latency_seconds_bucket{le=\"0.1\"} 2\n",
                           "xl_latency_seconds_bucket{le=\"1\"} 3\n", "xl_latency_seconds_bucket{le=\"10\"} 4\n",
                           "xl_latency_seconds_bucket{le=\"+Inf\"} 5\n", "xl_latency_seconds_sum 52.65\n",
                           "xl_latency_seconds_count 5\n"})
    EXPECT_NE(text.find(line), std::string::npos) << line << " missing in\n" << text;
  EXPECT_THROW(r.histogram("xl_bad_seconds", "Bad.", {1.0, 0.5}), std::invalid_argument);
}

TEST(MetricsText, CountersOnlyGoUpAndEndInTotal) {
  Registry r;
  auto& c = r.counter("xl_things_total", "Things.");
  c.increment(2);
  EXPECT_THROW(c.increment(-1), std::invalid_argument);
  EXPECT_EQ(c.value(), 2);
  EXPECT_THROW(r.counter("xl_things", "Things."), std::invalid_argument);
  EXPECT_THROW(r.gauge("xl_things_total", "Things."), std::invalid_argument) << "same name, other type";
  EXPECT_THROW(r.gauge("1bad", "Bad name."), std::invalid_argument);
  EXPECT_THROW(r.gauge("xl_ok", "Bad label.", {{"le", "1"}}), std::invalid_argument);
}

TEST(MetricsText, ConcurrentUpdatesWhileScrapingLoseNothing) {
  Registry r;
  auto& c = r.counter("xl_hits_total", "Hits.");
  auto& h = r.histogram("xl_work_seconds", "Work.", {0.5});
  std::atomic<bool> done{false};
  std::thread scraper([&] {
    double last = -1;
    while (!done) {
      const auto text = r.serialize();
      auto at = text.find("\nxl_hits_total ");
      if (at == std::string::npos) continue;
      const double now = std::stod(text.substr(at + 15));
      EXPECT_GE(now, last) << "a counter went down between scrapes";
      last = now;
    }
  });
  std::vector<std::thread> workers;
  for (int t = 0; t < 4; ++t)
    workers.emplace_back([&] {
      for (int i = 0; i < 20000; ++i) {
        c.increment();
        h.observe(i % 2 ? 0.25 : 0.75);
        r.gauge("xl_worker_gauge", "Created concurrently.", {{"worker", std::to_string(i % 3)}}).set(i);
      }
    });
  for (auto& w : workers) w.join();
  done = true;
  scraper.join();
  EXPECT_EQ(c.value(), 80000);
  auto counts = h.cumulative_counts();
  EXPECT_EQ(counts[0], 40000u);
  EXPECT_EQ(counts[1], 80000u);
  EXPECT_DOUBLE_EQ(h.sum(), 40000 * 0.25 + 40000 * 0.75);
}

TEST(MetricsListen, ParsesAndClassifiesAddresses) {
  auto a = metrics::parse_listen_address("127.0.0.1:9464", "metrics.listen");
  EXPECT_EQ(a.host, "127.0.0.1");
  EXPECT_EQ(a.port, 9464);
  EXPECT_TRUE(a.is_loopback());
  auto b = metrics::parse_listen_address("[::1]:0", "x");
  EXPECT_EQ(b.host, "::1");
  EXPECT_TRUE(b.is_loopback());
  EXPECT_FALSE(metrics::parse_listen_address("0.0.0.0:80", "x").is_loopback());
  EXPECT_THROW(metrics::parse_listen_address("9464", "x"), UserError);
  EXPECT_THROW(metrics::parse_listen_address("127.0.0.1:99999", "x"), UserError);
}

TEST(MetricsServer, ServesMetricsHealthAnd404) {
  Registry r;
  r.gauge("xl_up", "Up.").set(1);
  metrics::MetricsServer server(r, metrics::parse_listen_address("127.0.0.1:0", "x"));
  ASSERT_GT(server.port(), 0);
  auto metrics_response = test::http_get(server.port(), "/metrics");
  EXPECT_EQ(metrics_response.rfind("HTTP/1.1 200 OK", 0), 0u) << metrics_response;
  EXPECT_NE(metrics_response.find("Content-Type: text/plain; version=0.0.4"), std::string::npos);
  EXPECT_NE(test::body_of(metrics_response).find("xl_up 1\n"), std::string::npos);
  EXPECT_EQ(test::body_of(test::http_get(server.port(), "/healthz")), "ok\n");
  EXPECT_EQ(test::http_get(server.port(), "/nope").rfind("HTTP/1.1 404", 0), 0u);
  EXPECT_EQ(test::http_exchange(server.port(), "POST /metrics HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 405", 0), 0u);
  EXPECT_EQ(test::http_exchange(server.port(), "garbage\r\n\r\n").rfind("HTTP/1.1 400", 0), 0u);
}

TEST(MetricsServer, BusyPortIsAClearError) {
  Registry r;
  metrics::MetricsServer first(r, metrics::parse_listen_address("127.0.0.1:0", "x"));
  try {
    metrics::MetricsServer second(r, metrics::parse_listen_address("127.0.0.1:" + std::to_string(first.port()), "x"));
    FAIL() << "second bind should fail";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("cannot listen on 127.0.0.1:" + std::to_string(first.port())),
              std::string::npos)
        << e.what();
  }
}

TEST(MetricsText, TrainLossIsCrossEntropyAndTheAuxiliaryLossItsOwnGauge) {
  Registry r;
  TrainingMetrics m(r, {{"rank", "0"}});
  StepRecord s;
  s.step = 1, s.loss = 2.0, s.aux_loss = 0.5, s.lr = 1e-3;
  m.on_step(s);
  const auto text = r.serialize();
  EXPECT_NE(text.find("xl_train_loss{rank=\"0\"} 2\n"), std::string::npos) << text;
  EXPECT_NE(text.find("xl_train_aux_loss{rank=\"0\"} 0.5\n"), std::string::npos) << text;
}
