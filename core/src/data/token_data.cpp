#include "xlhost/core/data/token_data.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <ostream>
#include <random>

#include "xlhost/core/data/json_lines.hpp"
#include "xlhost/core/util/error.hpp"
#include "xlhost/core/util/md5.hpp"

namespace xlhost::core {

namespace fs = std::filesystem;

namespace {

constexpr char kMagic[8] = {'X', 'L', 'T', 'O', 'K', '1', 0, 0};

struct Header {
  char magic[8];
  uint32_t width;
  uint32_t reserved;
  uint64_t count;
  uint64_t documents;
  uint64_t skipped;
};
static_assert(sizeof(Header) == 40, "token file header layout");

std::string errno_text() { return std::strerror(errno); }

}  // namespace

TokenFile::TokenFile(TokenFile&& o) noexcept
    : path_(std::move(o.path_)),
      map_(o.map_),
      map_size_(o.map_size_),
      count_(o.count_),
      width_(o.width_),
      documents_(o.documents_) {
  o.map_ = nullptr;
}

TokenFile::~TokenFile() {
  if (map_) munmap(map_, map_size_);
}

const uint16_t* TokenFile::tokens16_() const {
  return reinterpret_cast<const uint16_t*>(static_cast<const char*>(map_) + sizeof(Header));
}
const uint32_t* TokenFile::tokens32_() const {
  return reinterpret_cast<const uint32_t*>(static_cast<const char*>(map_) + sizeof(Header));
}

TokenFile TokenFile::open(const std::string& token_path) {
  int fd = ::open(token_path.c_str(), O_RDONLY);
  if (fd < 0) throw UserError(token_path + ": cannot open token file: " + errno_text());
  struct stat st {};
  fstat(fd, &st);
  TokenFile file;
  file.path_ = token_path;
  file.map_size_ = static_cast<size_t>(st.st_size);
  if (file.map_size_ < sizeof(Header)) {
    close(fd);
    throw UserError(token_path + ": truncated token file (delete it to rebuild)");
  }
  file.map_ = mmap(nullptr, file.map_size_, PROT_READ, MAP_SHARED, fd, 0);
  close(fd);
  if (file.map_ == MAP_FAILED) {
    file.map_ = nullptr;
    throw UserError(token_path + ": mmap failed: " + errno_text());
  }
  Header h;
  std::memcpy(&h, file.map_, sizeof h);
  if (std::memcmp(h.magic, kMagic, sizeof kMagic) != 0 || (h.width != 2 && h.width != 4) ||
      sizeof(Header) + h.count * h.width != file.map_size_)
    throw UserError(token_path + ": not a valid xlhost token file (delete it to rebuild)");
  file.count_ = h.count, file.width_ = h.width, file.documents_ = h.documents;
  return file;
}

TokenFile TokenFile::open_or_build(const std::string& data_path, const Tokenizer& tokenizer,
                                   const std::string& cache_dir, bool skip_malformed, std::ostream& log) {
  if (!fs::exists(data_path)) throw UserError(data_path + ": no such data file");
  const std::string md5 = md5_file(data_path);
  const fs::path cached = fs::path(cache_dir) / (md5 + "-" + tokenizer.fingerprint() + ".tok");
  if (!fs::exists(cached)) {
    const uint32_t width = tokenizer.vocab_size() <= 65536 ? 2 : 4;
    std::vector<uint32_t> ids;
    auto report = read_json_lines(data_path, skip_malformed, [&](const std::string& text) {
      ids.push_back(static_cast<uint32_t>(tokenizer.bos_id()));
      for (int64_t id : tokenizer.encode(text)) ids.push_back(static_cast<uint32_t>(id));
      ids.push_back(static_cast<uint32_t>(tokenizer.eos_id()));
    });
    if (report.documents == 0) throw UserError(data_path + ": no documents (expected JSON lines with a \"text\" field)");
    for (const auto& p : report.first_problems) log << "skipped " << p << "\n";
    if (report.skipped) log << "skipped " << report.skipped << " malformed line(s) of " << report.lines << " in " << data_path << "\n";

    fs::create_directories(cache_dir);
    // Written beside the final name and renamed, so a crash never leaves a partial cache.
    const fs::path tmp = cached.string() + ".tmp" + std::to_string(getpid());
    {
      std::ofstream out(tmp, std::ios::binary);
      Header h{};
      std::memcpy(h.magic, kMagic, sizeof kMagic);
      h.width = width, h.count = ids.size(), h.documents = report.documents, h.skipped = report.skipped;
      out.write(reinterpret_cast<const char*>(&h), sizeof h);
      if (width == 2) {
        std::vector<uint16_t> narrow(ids.begin(), ids.end());
        out.write(reinterpret_cast<const char*>(narrow.data()), narrow.size() * 2);
      } else {
        out.write(reinterpret_cast<const char*>(ids.data()), ids.size() * 4);
      }
      if (!out) throw UserError(tmp.string() + ": cannot write token cache");
    }
    fs::rename(tmp, cached);
    log << "tokenised " << data_path << ": " << report.documents << " documents, " << ids.size() << " tokens -> "
        << cached.string() << "\n";
  }
  TokenFile file = open(cached.string());
  return file;
}

WindowSampler::WindowSampler(const TokenFile& tokens, int64_t seq_len, int64_t batch_size, uint64_t seed,
                             bool shuffle)
    : seq_len_(seq_len),
      batch_size_(batch_size),
      windows_(tokens.size() > 0 ? static_cast<int64_t>(tokens.size() - 1) / seq_len : 0),
      batches_per_epoch_(windows_ / batch_size),
      seed_(seed),
      shuffle_(shuffle) {
  if (batches_per_epoch_ == 0)
    throw UserError(tokens.path() + ": " + std::to_string(tokens.size()) + " tokens make " + std::to_string(windows_) +
                    " windows of seq_len " + std::to_string(seq_len) + ", fewer than one batch of " +
                    std::to_string(batch_size) + " (use more data or a smaller seq_len/batch_size)");
}

std::vector<int64_t> WindowSampler::window_starts(int64_t global_index) {
  const int64_t epoch = global_index / batches_per_epoch_;
  const int64_t index = global_index % batches_per_epoch_;
  if (epoch != cached_epoch_) {
    order_.resize(static_cast<size_t>(windows_));
    for (int64_t i = 0; i < windows_; ++i) order_[i] = i;
    if (shuffle_) {
      // Fisher–Yates with mt19937_64 (fully specified by the standard, unlike
      // std::shuffle's use of distributions), so the order is the same on every platform.
      std::mt19937_64 rng(seed_ * 1000003ULL + static_cast<uint64_t>(epoch));
      for (int64_t i = windows_ - 1; i > 0; --i) std::swap(order_[i], order_[rng() % static_cast<uint64_t>(i + 1)]);
    }
    cached_epoch_ = epoch;
  }
  std::vector<int64_t> starts(static_cast<size_t>(batch_size_));
  for (int64_t b = 0; b < batch_size_; ++b) starts[b] = order_[index * batch_size_ + b] * seq_len_;
  return starts;
}

}  // namespace xlhost::core
