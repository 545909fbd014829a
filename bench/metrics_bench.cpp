// Cost of the metrics path, in isolation from training noise: one training step's
// updates, one serialisation of the training registry, and one scrape over loopback HTTP.
#include <benchmark/benchmark.h>

#include "http_get.hpp"
#include "xlhost/core/metrics/metrics_server.hpp"
#include "xlhost/core/metrics/training_metrics.hpp"

using namespace xlhost::core;

namespace {

metrics::Labels labels() { return {{"experiment", "1.4.0"}, {"plugin", "model_original"}, {"rank", "0"}}; }

RunStart start() {
  RunStart s;
  s.total_steps = 1000, s.flops_per_token = 1e8;
  return s;
}

StepRecord record() {
  StepRecord r;
  r.step = 10, r.tokens = 2048, r.samples = 16, r.loss = 2.5, r.lr = 1e-3, r.grad_norm = 0.9;
  r.tokens_per_second = 1e4, r.step_seconds = 0.2, r.forward_seconds = 0.07, r.backward_seconds = 0.12;
  r.optimizer_seconds = 0.01;
  return r;
}

void BM_StepUpdate(benchmark::State& state) {
  metrics::Registry registry;
  TrainingMetrics m(registry, labels(), 1e11);
  m.on_start(start());
  auto r = record();
  for (auto _ : state) m.on_step(r);
}
BENCHMARK(BM_StepUpdate);

void BM_Serialize(benchmark::State& state) {
  metrics::Registry registry;
  TrainingMetrics m(registry, labels(), 1e11);
  m.on_start(start());
  m.on_step(record());
  size_t bytes = 0;
  for (auto _ : state) bytes = registry.serialize().size();
  state.counters["bytes"] = static_cast<double>(bytes);
}
BENCHMARK(BM_Serialize);

void BM_ScrapeOverHttp(benchmark::State& state) {
  metrics::Registry registry;
  TrainingMetrics m(registry, labels(), 1e11);
  m.on_start(start());
  m.on_step(record());
  metrics::MetricsServer server(registry, metrics::parse_listen_address("127.0.0.1:0", "bench"));
  for (auto _ : state) benchmark::DoNotOptimize(xlhost::test::http_get(server.port(), "/metrics"));
}
BENCHMARK(BM_ScrapeOverHttp)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
