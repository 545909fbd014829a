#include "xlhost/core/data/token_data.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <rapidjson/document.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <ostream>
#include <random>

#include "xlhost/core/data/chat.hpp"
#include "xlhost/core/data/json_lines.hpp"
#include "xlhost/core/util/checksum.hpp"
#include "xlhost/core/util/error.hpp"
#include "xlhost/core/util/file_io.hpp"
#include "xlhost/core/util/md5.hpp"
#include "xlhost/core/util/parallel.hpp"
#include "xlhost/core/util/progress.hpp"

namespace xlhost::core {

namespace fs = std::filesystem;

namespace {

// Version 2 added the payload checksum: version-1 caches fail the magic check and are rebuilt.
constexpr char kMagic[8] = {'X', 'L', 'T', 'O', 'K', '2', 0, 0};

struct Header {
  char magic[8];
  uint32_t width;
  uint32_t flags;  // kHasMask: a byte per token after the ids, 1 = in the loss
  uint64_t count;
  uint64_t documents;
  uint64_t skipped;
  char checksum[32];  // of the token ids after the header (util/checksum.hpp)
};
static_assert(sizeof(Header) == TokenFile::kHeaderBytes, "token file header layout");
constexpr uint32_t kHasMask = 1;

std::string errno_text() { return std::strerror(errno); }

}  // namespace

TokenFile::TokenFile(TokenFile&& o) noexcept
    : path_(std::move(o.path_)),
      source_(std::move(o.source_)),
      map_(o.map_),
      map_size_(o.map_size_),
      count_(o.count_),
      width_(o.width_),
      has_mask_(o.has_mask_),
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
  int fd = ::open(token_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw UserError(token_path + ": cannot open token file: " + errno_text());
  struct stat st {};
  fstat(fd, &st);
  TokenFile file;
  file.path_ = file.source_ = token_path;
  file.map_size_ = static_cast<size_t>(st.st_size);
  if (!S_ISREG(st.st_mode) || file.map_size_ < sizeof(Header)) {
    close(fd);
    throw UserError(token_path + ": truncated token file");
  }
  file.map_ = mmap(nullptr, file.map_size_, PROT_READ, MAP_SHARED, fd, 0);
  close(fd);
  if (file.map_ == MAP_FAILED) {
    file.map_ = nullptr;
    throw UserError(token_path + ": mmap failed: " + errno_text());
  }
  Header h;
  std::memcpy(&h, file.map_, sizeof h);
  const size_t payload = file.map_size_ - sizeof(Header);
  const bool has_mask = h.flags & kHasMask;
  if (std::memcmp(h.magic, kMagic, sizeof kMagic) != 0 || (h.width != 2 && h.width != 4) || (h.flags & ~kHasMask) ||
      h.count > payload || h.count * (h.width + (has_mask ? 1 : 0)) != payload)
    throw UserError(token_path + ": not a valid xlhost token file (or one of an older format)");
  const auto* ids = static_cast<const char*>(file.map_) + sizeof(Header);
  if (checksum_bytes(ids, payload) != std::string(h.checksum, sizeof h.checksum))
    throw UserError(token_path + ": token file does not match its checksum (corrupted)");
  file.count_ = h.count, file.width_ = h.width, file.documents_ = h.documents, file.has_mask_ = has_mask;
  return file;
}

namespace {

// Every document of `data_path` tokenised (text: bos + text + eos; chat: the rendered
// conversation and its loss mask), several threads per block of documents, written to
// `cached` through a temporary file and a rename, so a crash never leaves a partial cache.
void build_token_file(const std::string& data_path, const Tokenizer& tokenizer, DocumentFormat format,
                      const fs::path& cached, bool skip_malformed, std::ostream& log) {
  const bool chat = format == DocumentFormat::kChat;
  if (chat) require_chatml(tokenizer);
  const uint32_t width = tokenizer.vocab_size() <= 65536 ? 2 : 4;
  const int threads = worker_threads(0);
  std::vector<uint32_t> ids;
  std::vector<uint8_t> mask;
  size_t done_bytes = 0;
  const auto started = std::chrono::steady_clock::now();
  ProgressLine progress(log, static_cast<int64_t>(fs::file_size(data_path)), 0);
  std::vector<ChatMessage> messages;
  auto read_document = [&](const rapidjson::Value& line, std::vector<TrainingDocument>& block) -> std::string {
    TrainingDocument doc;
    if (chat) {
      if (auto problem = read_conversation(line, messages); !problem.empty()) return problem;
      doc = render_chatml(messages, false);
    } else if (auto problem = read_text_field(line, doc.text); !problem.empty()) {
      return problem;
    }
    block.push_back(std::move(doc));
    return "";
  };
  auto tokenize_block = [&](std::vector<TrainingDocument>& block) {
    std::vector<std::vector<int64_t>> doc_ids(block.size());
    std::vector<std::vector<uint8_t>> doc_mask(block.size());
    parallel_for(block.size(), threads,
                 [&](size_t i, int) { tokenize_document(block[i], tokenizer, doc_ids[i], doc_mask[i]); });
    for (size_t i = 0; i < block.size(); ++i) {
      if (!chat) ids.push_back(static_cast<uint32_t>(tokenizer.bos_id()));
      for (int64_t id : doc_ids[i]) ids.push_back(static_cast<uint32_t>(id));
      if (!chat) ids.push_back(static_cast<uint32_t>(tokenizer.eos_id()));
      mask.insert(mask.end(), doc_mask[i].begin(), doc_mask[i].end());
      done_bytes += block[i].text.size();
    }
    progress.count(static_cast<int64_t>(done_bytes), "tokenising: bytes");
  };
  auto report = read_json_object_blocks<TrainingDocument>(data_path, skip_malformed, 4u << 20, read_document,
                                                          tokenize_block);
  progress.finish();
  const double seconds = seconds_since(started);
  if (report.documents == 0)
    throw UserError(data_path + ": no documents (expected JSON lines with " +
                    (chat ? "a \"conversations\" array" : "a \"text\" field") + ")");
  for (const auto& p : report.first_problems) log << "skipped " << p << "\n";
  if (report.skipped) log << "skipped " << report.skipped << " malformed line(s) of " << report.lines << " in " << data_path << "\n";

  std::string payload;
  if (width == 2) {
    std::vector<uint16_t> narrow(ids.begin(), ids.end());
    payload.assign(reinterpret_cast<const char*>(narrow.data()), narrow.size() * 2);
  } else {
    payload.assign(reinterpret_cast<const char*>(ids.data()), ids.size() * 4);
  }
  if (chat) payload.append(reinterpret_cast<const char*>(mask.data()), mask.size());
  Header h{};
  std::memcpy(h.magic, kMagic, sizeof kMagic);
  h.width = width, h.flags = chat ? kHasMask : 0;
  h.count = ids.size(), h.documents = report.documents, h.skipped = report.skipped;
  const std::string checksum = checksum_bytes(payload.data(), payload.size());
  std::memcpy(h.checksum, checksum.data(), sizeof h.checksum);
  const fs::path tmp = cached.string() + ".tmp" + std::to_string(getpid());
  try {
    FileWriter out(tmp.string());
    out.write(&h, sizeof h);
    out.write(payload);
    out.finish();
    fs::rename(tmp, cached);
  } catch (...) {
    std::error_code ignored;
    fs::remove(tmp, ignored);
    throw;
  }
  log << "tokenised " << data_path << ": " << report.documents << " documents, " << ids.size() << " tokens, "
      << format_fixed(static_cast<double>(done_bytes) / 1e6 / std::max(seconds, 1e-9), 1) << " MB/s on " << threads
      << " thread(s) -> " << cached.string() << "\n";
}

}  // namespace

TokenFile TokenFile::open_or_build(const std::string& data_path, const Tokenizer& tokenizer,
                                   const std::string& cache_dir, bool skip_malformed, std::ostream& log,
                                   DocumentFormat format) {
  require_regular_file(data_path, "data");
  const std::string md5 = md5_file(data_path);
  const fs::path cached = fs::path(cache_dir) / (md5 + "-" + tokenizer.fingerprint() +
                                                 (format == DocumentFormat::kChat ? "-chat" : "") + ".tok");
  if (fs::exists(cached)) {
    try {
      TokenFile file = open(cached.string());
      file.source_ = data_path;
      return file;
    } catch (const UserError& e) {  // a cache is only a cache: rebuild it
      log << "rebuilding the token cache of " << data_path << ": " << e.what() << "\n";
    }
  }
  ensure_directory(cache_dir, "token cache (data.cache_dir)");
  build_token_file(data_path, tokenizer, format, cached, skip_malformed, log);
  TokenFile file = open(cached.string());
  file.source_ = data_path;
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
    throw UserError(tokens.source() + ": " + std::to_string(tokens.size()) + " tokens make " + std::to_string(windows_) +
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
