#include "xlhost/core/util/progress.hpp"

#include <unistd.h>

#include <cstdio>
#include <iostream>

namespace xlhost::core {

std::string format_count(double n) {
  const char* units[] = {"", "k", "M", "G", "T"};
  int u = 0;
  while (n >= 1000 && u < 4) n /= 1000, ++u;
  char text[32];
  std::snprintf(text, sizeof text, u ? "%.2f%s" : "%.0f%s", n, units[u]);
  return text;
}

std::string format_fixed(double x, int digits) {
  char text[64];
  std::snprintf(text, sizeof text, "%.*f", digits, x);
  return text;
}

std::string format_duration(double seconds) {
  if (!(seconds >= 0) || seconds > 1e8) return "?";
  const long s = static_cast<long>(seconds + 0.5);
  char text[32];
  if (s >= 3600) std::snprintf(text, sizeof text, "%ldh%02ldm", s / 3600, s % 3600 / 60);
  else if (s >= 60) std::snprintf(text, sizeof text, "%ldm%02lds", s / 60, s % 60);
  else std::snprintf(text, sizeof text, "%lds", s);
  return text;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

ProgressLine::ProgressLine(std::ostream& out, int64_t total, int64_t start)
    : out_(out),
      total_(total),
      start_(start),
      interactive_(&out == &std::cerr && isatty(STDERR_FILENO)),
      started_(std::chrono::steady_clock::now()) {}

void ProgressLine::update(int64_t step, double loss, double lr, double tokens_per_second) {
  const double elapsed = seconds_since(started_);
  const double done = static_cast<double>(step - start_);
  const double eta = done > 0 ? elapsed / done * static_cast<double>(total_ - step) : -1;
  char lr_text[32];
  std::snprintf(lr_text, sizeof lr_text, "%.2e", lr);
  std::string line = "step " + std::to_string(step) + "/" + std::to_string(total_) + " | loss " +
                     format_fixed(loss, 4) + " | lr " + lr_text + " | " + format_count(tokens_per_second) +
                     " tok/s | elapsed " + format_duration(elapsed) + " | ETA " + format_duration(eta);
  show(line);
}

void ProgressLine::within_step(int64_t step, int64_t done, int64_t micro_batches, double step_seconds) {
  const auto now = std::chrono::steady_clock::now();
  if (step_seconds < 10 || now - last_line_ < std::chrono::seconds(interactive_ ? 1 : 30)) return;
  const double eta = done > 0 ? step_seconds / static_cast<double>(done) * static_cast<double>(micro_batches - done) : -1;
  show("step " + std::to_string(step) + "/" + std::to_string(total_) + " | micro-batch " + std::to_string(done) + "/" +
       std::to_string(micro_batches) + " | step elapsed " + format_duration(step_seconds) + " | step ETA " +
       format_duration(eta));
}

void ProgressLine::count(int64_t done, const std::string& what) {
  const auto now = std::chrono::steady_clock::now();
  if (done < total_ && now - last_line_ < std::chrono::seconds(interactive_ ? 1 : 10)) return;
  const double elapsed = std::chrono::duration<double>(now - started_).count();
  const double eta = done > start_ ? elapsed / static_cast<double>(done - start_) * static_cast<double>(total_ - done) : -1;
  show(what + " " + format_count(static_cast<double>(done)) + "/" + format_count(static_cast<double>(total_)) +
       " | elapsed " + format_duration(elapsed) + " | ETA " + format_duration(eta));
}

void ProgressLine::show(const std::string& line) {
  last_line_ = std::chrono::steady_clock::now();
  if (interactive_) {
    out_ << "\r\033[K" << line << std::flush;
    open_line_ = true;
  } else {
    out_ << line << "\n" << std::flush;
  }
}

void ProgressLine::note(const std::string& line) {
  finish();
  out_ << line << "\n" << std::flush;
}

void ProgressLine::finish() {
  if (open_line_) out_ << "\n" << std::flush;
  open_line_ = false;
}

}  // namespace xlhost::core
