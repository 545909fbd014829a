// A small Prometheus client with the shape of prometheus-cpp (which Debian does not
// package): a registry of metric families, each with labelled children. Updates are
// lock-free atomics so the training thread never waits for a scrape; the text exposition
// format 0.0.4 is built on demand by serialize().
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace xlhost::core::metrics {

using Labels = std::map<std::string, std::string>;

class Counter {
 public:
  void increment(double by = 1.0);  // by < 0 throws: counters only go up
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

// A gauge has no sample until it is first set: a loss that was never measured is absent
// from the exposition (no line in a dashboard), not a 0 that reads like a perfect score.
class Gauge {
 public:
  void set(double v) {
    value_.store(v, std::memory_order_relaxed);
    has_value_.store(true, std::memory_order_release);
  }
  void add(double by);
  double value() const { return value_.load(std::memory_order_relaxed); }
  bool has_value() const { return has_value_.load(std::memory_order_acquire); }

 private:
  std::atomic<double> value_{0.0};
  std::atomic<bool> has_value_{false};
};

class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);  // ascending, +Inf implied
  void observe(double v);
  const std::vector<double>& upper_bounds() const { return bounds_; }
  // Cumulative counts per bound (the last is +Inf = count), sum, count: one consistent-
  // enough snapshot (each number is read atomically; a concurrent observe may be half in).
  std::vector<uint64_t> cumulative_counts() const;
  double sum() const { return sum_.load(std::memory_order_relaxed); }

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;  // per bucket, not cumulative; last = +Inf
  std::atomic<double> sum_{0.0};
};

enum class Type { Counter, Gauge, Histogram };

// Escapes a label value for the text format: backslash, double quote and newline.
std::string escape_label_value(const std::string& value);

class Registry {
 public:
  // Returns the child with these labels of the family `name`, creating either on first
  // use. Names must match [a-zA-Z_:][a-zA-Z0-9_:]*; counters must end in _total. A name
  // reused with another type or help text throws std::invalid_argument.
  Counter& counter(const std::string& name, const std::string& help, const Labels& labels = {});
  Gauge& gauge(const std::string& name, const std::string& help, const Labels& labels = {});
  Histogram& histogram(const std::string& name, const std::string& help, const std::vector<double>& upper_bounds,
                       const Labels& labels = {});

  // Text exposition format 0.0.4.
  std::string serialize() const;

 private:
  struct Family {
    Type type;
    std::string help;
    std::vector<double> bounds;
    std::map<Labels, std::unique_ptr<Counter>> counters;
    std::map<Labels, std::unique_ptr<Gauge>> gauges;
    std::map<Labels, std::unique_ptr<Histogram>> histograms;
  };
  Family& family(const std::string& name, Type type, const std::string& help, const Labels& labels);

  mutable std::mutex mutex_;  // guards the maps; values are atomics
  std::map<std::string, Family> families_;
};

}  // namespace xlhost::core::metrics
