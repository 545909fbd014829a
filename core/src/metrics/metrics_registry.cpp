#include "xlhost/core/metrics/metrics_registry.hpp"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <regex>
#include <sstream>
#include <stdexcept>

namespace xlhost::core::metrics {

namespace {

void atomic_add(std::atomic<double>& target, double by) {
  double current = target.load(std::memory_order_relaxed);
  while (!target.compare_exchange_weak(current, current + by, std::memory_order_relaxed)) {
  }
}

std::string format_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  // Shortest text that reads back as the same double (0.1, not 0.10000000000000001).
  char text[32];
  for (int precision = 6; precision <= 17; ++precision) {
    std::snprintf(text, sizeof text, "%.*g", precision, v);
    if (std::strtod(text, nullptr) == v) break;
  }
  return text;
}

std::string escape_help(const std::string& help) {
  std::string out;
  for (char c : help) {
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string label_text(const Labels& labels, const std::string& extra_name = "", const std::string& extra_value = "") {
  if (labels.empty() && extra_name.empty()) return "";
  std::string out = "{";
  bool first = true;
  for (const auto& [k, v] : labels) {
    out += (first ? "" : ",") + k + "=\"" + escape_label_value(v) + "\"";
    first = false;
  }
  if (!extra_name.empty()) out += (first ? "" : ",") + extra_name + "=\"" + extra_value + "\"";
  return out + "}";
}

void check_name(const std::string& name, const Labels& labels) {
  static const std::regex metric(R"(^[a-zA-Z_:][a-zA-Z0-9_:]*$)"), label(R"(^[a-zA-Z_][a-zA-Z0-9_]*$)");
  if (!std::regex_match(name, metric)) throw std::invalid_argument("invalid metric name '" + name + "'");
  for (const auto& [k, v] : labels)
    if (!std::regex_match(k, label) || k.rfind("__", 0) == 0 || k == "le")
      throw std::invalid_argument("invalid label name '" + k + "' on " + name);
}

}  // namespace

void Counter::increment(double by) {
  if (by < 0) throw std::invalid_argument("counter increment must not be negative");
  atomic_add(value_, by);
}

void Gauge::add(double by) {
  atomic_add(value_, by);
  has_value_.store(true, std::memory_order_release);
}

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)) {
  for (size_t i = 1; i < bounds_.size(); ++i)
    if (!(bounds_[i - 1] < bounds_[i])) throw std::invalid_argument("histogram bounds must be strictly ascending");
  counts_ = std::make_unique<std::atomic<uint64_t>[]>(bounds_.size() + 1);
  for (size_t i = 0; i <= bounds_.size(); ++i) counts_[i] = 0;
}

void Histogram::observe(double v) {
  size_t bucket = 0;
  while (bucket < bounds_.size() && v > bounds_[bucket]) ++bucket;
  counts_[bucket].fetch_add(1, std::memory_order_relaxed);
  atomic_add(sum_, v);
}

std::vector<uint64_t> Histogram::cumulative_counts() const {
  std::vector<uint64_t> out(bounds_.size() + 1);
  uint64_t total = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) out[i] = total += counts_[i].load(std::memory_order_relaxed);
  return out;
}

std::string escape_label_value(const std::string& value) {
  std::string out;
  for (char c : value) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

Registry::Family& Registry::family(const std::string& name, Type type, const std::string& help, const Labels& labels) {
  check_name(name, labels);
  if (type == Type::Counter && (name.size() < 6 || name.compare(name.size() - 6, 6, "_total") != 0))
    throw std::invalid_argument("counter '" + name + "' must end in _total");
  auto [it, created] = families_.try_emplace(name);
  if (created) {
    it->second.type = type;
    it->second.help = help;
  } else if (it->second.type != type || it->second.help != help) {
    throw std::invalid_argument("metric '" + name + "' registered again with another type or help");
  }
  return it->second;
}

Counter& Registry::counter(const std::string& name, const std::string& help, const Labels& labels) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto& slot = family(name, Type::Counter, help, labels).counters[labels];
  if (!slot) slot = std::make_unique<Counter>();
  return *slot;
}

Gauge& Registry::gauge(const std::string& name, const std::string& help, const Labels& labels) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto& slot = family(name, Type::Gauge, help, labels).gauges[labels];
  if (!slot) slot = std::make_unique<Gauge>();
  return *slot;
}

Histogram& Registry::histogram(const std::string& name, const std::string& help, const std::vector<double>& bounds,
                               const Labels& labels) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto& f = family(name, Type::Histogram, help, labels);
  if (f.histograms.empty()) f.bounds = bounds;
  else if (f.bounds != bounds) throw std::invalid_argument("histogram '" + name + "' registered with other buckets");
  auto& slot = f.histograms[labels];
  if (!slot) slot = std::make_unique<Histogram>(bounds);
  return *slot;
}

std::string Registry::serialize() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::ostringstream out;
  for (const auto& [name, f] : families_) {
    static const char* type_names[] = {"counter", "gauge", "histogram"};
    out << "# HELP " << name << " " << escape_help(f.help) << "\n# TYPE " << name << " "
        << type_names[static_cast<int>(f.type)] << "\n";
    for (const auto& [labels, c] : f.counters) out << name << label_text(labels) << " " << format_value(c->value()) << "\n";
    for (const auto& [labels, g] : f.gauges)
      if (g->has_value()) out << name << label_text(labels) << " " << format_value(g->value()) << "\n";
    for (const auto& [labels, h] : f.histograms) {
      auto counts = h->cumulative_counts();
      for (size_t i = 0; i < h->upper_bounds().size(); ++i)
        out << name << "_bucket" << label_text(labels, "le", format_value(h->upper_bounds()[i])) << " " << counts[i]
            << "\n";
      out << name << "_bucket" << label_text(labels, "le", "+Inf") << " " << counts.back() << "\n";
      out << name << "_sum" << label_text(labels) << " " << format_value(h->sum()) << "\n";
      out << name << "_count" << label_text(labels) << " " << counts.back() << "\n";
    }
  }
  return out.str();
}

}  // namespace xlhost::core::metrics
