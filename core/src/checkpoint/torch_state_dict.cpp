#include "xlhost/core/checkpoint/torch_state_dict.hpp"

#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/jit/serialization/unpickler.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <optional>
#include <vector>

#include "xlhost/core/util/error.hpp"
#include "xlhost/core/util/file_io.hpp"

namespace xlhost::core {

namespace {

// LibTorch's unpickler reads what TorchScript pickles. A Python state dict differs in two
// ways: it is a collections.OrderedDict (LibTorch turns that into None, so filling it
// fails) and it ends with BUILD setting its `_metadata` attribute (LibTorch's BUILD knows
// only TorchScript's classes). This rewrites the opcode stream before LibTorch reads it:
// every `OrderedDict()` becomes an empty dict, and a BUILD is dropped with its argument.
// Pickle streams hold no offsets, so opcodes can be removed freely. It also measures how
// deep values nest: LibTorch's unpickler builds and frees them recursively, so a stream of
// a million TUPLE1s (a few MB) would overflow the stack; a state dict nests a handful deep.
class StateDictPickle {
 public:
  explicit StateDictPickle(const std::string& path, std::string bytes) : path_(path), in_(std::move(bytes)) {}

  std::string rewrite() {
    while (pos_ < in_.size()) {
      const size_t start = pos_;
      const char op = in_[pos_];
      const std::string token = in_.substr(start, checked_token_length());
      pos_ += token.size();
      // The class goes into the memo only and is never emitted; each OrderedDict() call,
      // with the class itself or from the memo, becomes {}.
      const bool ordered_dict = token == "ccollections\nOrderedDict\n";
      if (ordered_dict) ordered_dict_memo_ = read_memo_put();
      if (ordered_dict || ((op == 'h' || op == 'j') && memo_index(token) == ordered_dict_memo_)) {
        if (in_.compare(pos_, 2, ")R") != 0) fail("OrderedDict used other than as OrderedDict()");
        pos_ += 2;
        push("}");
        continue;
      }
      if (op == 'b') {  // BUILD: drop the state and the opcode
        pop();
        continue;
      }
      apply(op, token);
    }
    check_rewritten();
    return out_;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw UserError(path_ + ": not a PyTorch state dict (" + what + " at byte " + std::to_string(pos_) + " of data.pkl)");
  }

  uint32_t u32(size_t at) const {
    if (at + 4 > in_.size()) fail("truncated pickle");
    uint32_t v;
    std::memcpy(&v, in_.data() + at, 4);
    return v;
  }

  // The rewritten stream read back token by token: a crafted input whose cuts misplace a
  // token must not hand LibTorch's unpickler text to read as a length field.
  void check_rewritten() const {
    StateDictPickle again(path_, out_);
    while (again.pos_ < again.in_.size()) again.pos_ += again.checked_token_length();
  }

  // token_length, refused when the argument runs past the end: LibTorch's unpickler would
  // first reserve what a crafted length field says (gigabytes).
  size_t checked_token_length() const {
    const size_t length = token_length();
    if (length > in_.size() - pos_) fail("an argument of " + std::to_string(length) + " bytes runs past the end of the pickle");
    return length;
  }

  // Bytes of the opcode at pos_ with its argument; what torch.save writes with protocol 2.
  size_t token_length() const {
    const char op = in_[pos_];
    switch (op) {
      case '\x80': case 'q': case 'h': case 'K': return 2;  // PROTO, BINPUT, BINGET, BININT1
      case 'r': case 'j': case 'J': return 5;               // LONG_BINPUT, LONG_BINGET, BININT
      case 'M': return 3;                                   // BININT2
      case 'G': return 9;                                   // BINFLOAT
      case 'X': return 5 + static_cast<size_t>(u32(pos_ + 1));  // BINUNICODE
      case '\x8a':                                          // LONG1
        if (pos_ + 1 >= in_.size()) fail("truncated pickle");
        return 2 + static_cast<unsigned char>(in_[pos_ + 1]);
      case 'c': {  // GLOBAL "module\nname\n"
        const size_t a = in_.find('\n', pos_ + 1), b = a == std::string::npos ? a : in_.find('\n', a + 1);
        if (b == std::string::npos) fail("truncated GLOBAL");
        return b + 1 - pos_;
      }
      case '(': case '.': case ')': case 'R': case 't': case '\x85': case '\x86': case '\x87': case 'Q': case '}':
      case 's': case 'u': case ']': case 'a': case 'e': case 'N': case '\x88': case '\x89': case 'b':
        return 1;
      default:
        fail(std::string("unexpected pickle opcode 0x") + "0123456789abcdef"[(op >> 4) & 15] + "0123456789abcdef"[op & 15]);
    }
  }

  // A pickler numbers its memo entries 0, 1, 2, ...: LibTorch's unpickler grows its memo
  // table to whatever index a PUT names (a crafted 4-byte index: tens of gigabytes).
  void count_memo_put(int64_t index) {
    if (index > memo_puts_) fail("memo index " + std::to_string(index) + " after " + std::to_string(memo_puts_) + " memo entries");
    memo_puts_ = std::max(memo_puts_, index + 1);
  }

  int64_t memo_index(const std::string& token) const {
    return token[0] == 'h' || token[0] == 'q' ? static_cast<unsigned char>(token[1]) : static_cast<int64_t>(u32(pos_ - 4));
  }

  int64_t read_memo_put() {
    if (pos_ < in_.size() && (in_[pos_] == 'q' || in_[pos_] == 'r')) {
      const std::string token = in_.substr(pos_, checked_token_length());
      pos_ += token.size();
      count_memo_put(memo_index(token));
      return memo_index(token);
    }
    fail("OrderedDict not memoised");
  }

  static constexpr int kMaxDepth = 100;
  int64_t memo_puts_ = 0;

  // Where each stack item's opcodes begin in out_ (so that BUILD can cut its argument), and
  // how deep the item nests.
  void push(const char* token) {
    push_item(out_.size(), 1);
    out_ += token;
  }
  void push_item(size_t start, int depth) {
    if (depth > kMaxDepth) fail("values nested deeper than " + std::to_string(kMaxDepth) + " levels");
    starts_.push_back(start);
    depths_.push_back(depth);
  }
  // Removes the items from `index` on; returns one more than the deepest of them.
  int take_from(size_t index) {
    int deepest = 0;
    for (size_t i = index; i < depths_.size(); ++i) deepest = std::max(deepest, depths_[i]);
    starts_.resize(index), depths_.resize(index);
    return deepest + 1;
  }
  // SETITEM(S), APPEND(S): the removed items go into the container below them.
  void fill_container(size_t index) {
    const int depth = take_from(index);
    if (!depths_.empty()) depths_.back() = std::max(depths_.back(), depth);
    if (!depths_.empty() && depths_.back() > kMaxDepth) fail("values nested deeper than " + std::to_string(kMaxDepth) + " levels");
  }
  void pop() {
    if (starts_.empty()) fail("stack underflow");
    out_.resize(starts_.back());
    take_from(starts_.size() - 1);
  }
  void pop_to_mark() {
    if (marks_.empty()) fail("no MARK");
    const size_t mark = marks_.back();
    marks_.pop_back();
    fill_container(mark);
  }

  void apply(char op, const std::string& token) {
    const size_t at = out_.size();
    out_ += token;
    auto replace_top = [&](size_t popped) {  // pops `popped` items and pushes one that starts at the first
      if (starts_.size() < popped) fail("stack underflow");
      const size_t first = popped ? starts_[starts_.size() - popped] : at;
      push_item(first, take_from(starts_.size() - popped));
    };
    switch (op) {
      case '(': marks_.push_back(starts_.size()), push_item(at, 0); break;
      case 't': {  // TUPLE: the items since the mark become one, starting at the mark
        if (marks_.empty()) fail("no MARK");
        const size_t first = starts_[marks_.back()];
        const int depth = take_from(marks_.back());
        marks_.pop_back();
        push_item(first, depth);
        break;
      }
      case '\x85': replace_top(1); break;  // TUPLE1
      case '\x86': replace_top(2); break;  // TUPLE2
      case '\x87': replace_top(3); break;  // TUPLE3
      case 'R': replace_top(2); break;     // REDUCE: callable, args → result
      case 'Q': replace_top(1); break;     // BINPERSID
      case 's': fill_container(starts_.size() < 2 ? 0 : starts_.size() - 2); break;  // SETITEM
      case 'a': fill_container(starts_.empty() ? 0 : starts_.size() - 1); break;     // APPEND
      case 'u': case 'e': pop_to_mark(); break;                                     // SETITEMS, APPENDS
      case 'h': case 'j': {  // BINGET, LONG_BINGET: a memoised value, as deep as it was
        const auto memo = memo_depths_.find(memo_index(token));
        push_item(at, memo == memo_depths_.end() ? 1 : memo->second);
        break;
      }
      case 'q': case 'r':  // BINPUT, LONG_BINPUT: the stack is unchanged
        count_memo_put(memo_index(token));
        if (!depths_.empty()) memo_depths_[memo_index(token)] = depths_.back();
        break;
      case 'c': case ')': case '}': case ']': case 'N': case '\x88': case '\x89':
      case 'K': case 'M': case 'J': case '\x8a': case 'X': case 'G':
        push_item(at, 1);
        break;
      default: break;  // PROTO, STOP: the stack is unchanged
    }
  }

  const std::string& path_;
  const std::string in_;
  size_t pos_ = 0;
  std::string out_;
  std::vector<size_t> starts_, marks_;
  std::vector<int> depths_;               // beside starts_
  std::map<int64_t, int> memo_depths_;
  int64_t ordered_dict_memo_ = -1;
};

}  // namespace

std::map<std::string, torch::Tensor> load_torch_state_dict(const std::string& path) {
  require_regular_file(path, "PyTorch state dict");
  std::unique_ptr<caffe2::serialize::PyTorchStreamReader> archive;
  std::string pickle_name;
  try {
    archive = std::make_unique<caffe2::serialize::PyTorchStreamReader>(path);
    for (const auto& record : archive->getAllRecords())
      if (record.size() >= 8 && record.compare(record.size() - 8, 8, "data.pkl") == 0) pickle_name = record;
  } catch (const c10::Error& e) {
    throw UserError(path + ": not a torch.save archive (the zip format of PyTorch 1.6 and later), or truncated: " +
                    e.what_without_backtrace());
  }
  if (pickle_name.empty()) throw UserError(path + ": a zip file without data.pkl, not a torch.save archive");
  const std::string prefix = pickle_name.substr(0, pickle_name.size() - 8);
  c10::IValue value;
  try {
    auto [data, size] = archive->getRecord(pickle_name);
    const std::string bytes = StateDictPickle(path, std::string(static_cast<const char*>(data.get()), size)).rewrite();
    size_t pos = 0;
    torch::jit::Unpickler unpickler(
        [&](char* buffer, size_t n) {
          n = std::min(n, bytes.size() - pos);
          std::memcpy(buffer, bytes.data() + pos, n);
          pos += n;
          return n;
        },
        nullptr, nullptr, [&](const std::string& name) { return std::get<0>(archive->getRecord(prefix + "data/" + name)); },
        c10::Device(c10::kCPU));
    value = unpickler.parse_ivalue();
  } catch (const c10::Error& e) {
    throw UserError(path + ": cannot read the state dict (truncated or not a dict of tensors): " +
                    e.what_without_backtrace());
  }
  if (!value.isGenericDict()) throw UserError(path + ": holds a " + value.tagKind() + ", not a state dict (a dict of tensors)");
  std::map<std::string, torch::Tensor> tensors;
  for (const auto& entry : value.toGenericDict()) {
    if (!entry.key().isString() || !entry.value().isTensor())
      throw UserError(path + ": the state dict holds an entry that is not name → tensor (" + entry.key().tagKind() + " → " +
                      entry.value().tagKind() + "); a training checkpoint with a nested \"model\" dict? save its state dict");
    tensors[entry.key().toStringRef()] = entry.value().toTensor();
  }
  return tensors;
}

}  // namespace xlhost::core
