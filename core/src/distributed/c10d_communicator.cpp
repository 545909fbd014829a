#include "xlhost/core/distributed/c10d_communicator.hpp"

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <future>
#include <optional>
#include <thread>
#include <iostream>

#include "xlhost/core/http/http_server.hpp"
#include "xlhost/core/util/checksum.hpp"
#include "xlhost/core/util/error.hpp"

namespace xlhost::core::distributed {

namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kHeartbeat = std::chrono::milliseconds(500);
constexpr auto kWaitNotice = std::chrono::milliseconds(10000);

// `work`'s result when it comes within `limit` (its exception rethrown), else nothing; the
// thread is then left behind, so `work` must own everything it uses.
template <typename T, typename Work>
std::optional<T> within(std::chrono::milliseconds limit, Work work) {
  std::packaged_task<T()> task(std::move(work));
  auto result = task.get_future();
  std::thread(std::move(task)).detach();
  if (result.wait_for(limit) != std::future_status::ready) return std::nullopt;
  return result.get();
}

// Whether `work` ended within `limit`; a failure it ended with is thrown.
bool finished_within(c10d::Work& work, std::chrono::milliseconds limit) {
  try {
    return work.wait(limit);
  } catch (const std::exception&) {
    if (work.isCompleted()) throw;
    return false;  // only the wait timed out; the collective goes on
  }
}

c10::intrusive_ptr<c10d::Store> client_store(const LaunchEnvironment& env, std::chrono::milliseconds timeout) {
  c10d::TCPStoreOptions options;
  options.port = static_cast<std::uint16_t>(env.master_port);
  options.isServer = false;
  options.timeout = timeout;
  try {
    return c10::make_intrusive<c10d::TCPStore>(env.master_addr, options);
  } catch (const std::exception& e) {
    throw UserError("rank " + std::to_string(env.rank) + ": cannot reach the rendezvous store at " + env.master_addr +
                    ":" + std::to_string(env.master_port) + ": " + e.what());
  }
}

// xlhost's keys in the store. Under torchrun's agent store they also carry the prefix of
// this restart, so a restarted run never reads the keys of the attempt before it.
c10::intrusive_ptr<c10d::Store> with_prefix(const LaunchEnvironment& env, c10::intrusive_ptr<c10d::Store> store) {
  if (env.agent_store)
    store = c10::make_intrusive<c10d::PrefixStore>("/worker/attempt_" + std::to_string(env.restart_count), store);
  return c10::make_intrusive<c10d::PrefixStore>("xlhost", store);
}

Rendezvous rendezvous_of(const LaunchEnvironment& env, std::chrono::milliseconds timeout) {
  Rendezvous r;
  r.master_addr = env.master_addr, r.master_port = env.master_port;
  r.rank = env.rank, r.world_size = env.world_size, r.timeout = timeout;
  return r;
}

// The agent's store when torchrun hosts one, else one that rank 0 hosts.
c10::intrusive_ptr<c10d::Store> join_store(const LaunchEnvironment& env, std::chrono::milliseconds timeout) {
  if (env.agent_store) return with_prefix(env, client_store(env, timeout));
  return with_prefix(env, connect_store(rendezvous_of(env, timeout)));
}

// Where Gloo listens for the other ranks: loopback for a loopback rendezvous; else this
// machine's address on the route to the rendezvous host (what a UDP connect picks), so that
// ranks on several machines reach each other whatever the host name resolves to. "": the
// host name's address (c10d's default).
std::string gloo_address(const LaunchEnvironment& env) {
  if (http::ListenAddress{env.master_addr, env.master_port}.is_loopback()) return "127.0.0.1";
  addrinfo hints{}, *found = nullptr;
  hints.ai_socktype = SOCK_DGRAM;
  if (getaddrinfo(env.master_addr.c_str(), std::to_string(env.master_port).c_str(), &hints, &found) != 0) return "";
  std::string address;
  const int fd = socket(found->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_storage local{};
  socklen_t size = sizeof local;
  char text[INET6_ADDRSTRLEN] = {};
  if (fd >= 0 && connect(fd, found->ai_addr, found->ai_addrlen) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&local), &size) == 0) {
    const void* raw = local.ss_family == AF_INET6 ? static_cast<const void*>(&reinterpret_cast<sockaddr_in6*>(&local)->sin6_addr)
                                                  : static_cast<const void*>(&reinterpret_cast<sockaddr_in*>(&local)->sin_addr);
    if (inet_ntop(local.ss_family, raw, text, sizeof text)) address = text;
  }
  if (fd >= 0) close(fd);
  freeaddrinfo(found);
  return address;
}

std::string host_name() {
  char name[256] = {};
  gethostname(name, sizeof(name) - 1);
  return name;
}

}  // namespace

C10dCommunicator::C10dCommunicator(const LaunchEnvironment& env, BackendKind kind, std::chrono::milliseconds timeout,
                                   int64_t bucket_bytes)
    : env_(env), kind_(kind), timeout_(timeout), bucket_bytes_(std::max<int64_t>(1, bucket_bytes)) {
  store_ = join_store(env, timeout);
  try {
    backend_ = make_backend(kind, c10::make_intrusive<c10d::PrefixStore>("pg", store_), rendezvous_of(env, timeout),
                            gloo_address(env));
  } catch (const c10::Error& e) {
    throw UserError("rank " + std::to_string(env.rank) + ": the " + backend_name() + " process group did not form: " +
                    e.what_without_backtrace());
  }
  store_->set("host/" + std::to_string(env.rank), host_name());
  // A connection of its own: the heartbeat thread must not share the main thread's client.
  stop_heartbeat_ = std::make_shared<std::atomic<bool>>(false);
  std::packaged_task<void()> beat([store = with_prefix(env, client_store(env, timeout)), rank = env.rank,
                                   stop = stop_heartbeat_] {
    const std::string key = "heartbeat/" + std::to_string(rank);
    for (int64_t n = 0; !*stop; ++n) {
      try {
        store->set(key, std::to_string(n));
      } catch (const std::exception&) {  // the store is gone: a collective will fail and say so
        return;
      }
      std::this_thread::sleep_for(kHeartbeat);
    }
  });
  heartbeat_done_ = beat.get_future();
  std::thread(std::move(beat)).detach();
}

C10dCommunicator::~C10dCommunicator() {
  *stop_heartbeat_ = true;
  heartbeat_done_.wait_for(4 * kHeartbeat);  // a beat stuck on a dead link is left behind
}

// Which ranks stopped beating: their counters do not move over a few heartbeat periods.
// Asked of the store with a deadline: across a dead link it never answers (its client has
// no receive timeout), and naming the silent ranks must not hang the rank that asks.
std::string C10dCommunicator::silent_ranks() {
  const std::string store_gone = env_.agent_store ? "the launcher's store" : "rank 0 (it hosts the rendezvous store)";
  try {
    const auto silent = within<std::string>(8 * kHeartbeat, [store = store_, rank = env_.rank, world = env_.world_size] {
      auto read = [&] {
        std::vector<std::string> beats;
        for (int r = 0; r < world; ++r) {
          const std::string key = "heartbeat/" + std::to_string(r);
          beats.push_back(r == rank || !store->check({key}) ? "" : [&] {
            auto v = store->get(key);
            return std::string(v.begin(), v.end());
          }());
        }
        return beats;
      };
      const auto before = read();
      std::this_thread::sleep_for(6 * kHeartbeat);
      const auto after = read();
      std::string names;
      for (int r = 0; r < world; ++r)
        if (r != rank && before[r] == after[r]) names += (names.empty() ? "rank " : ", rank ") + std::to_string(r);
      return names;
    });
    return silent ? *silent : store_gone + " (the store does not answer)";
  } catch (const std::exception&) {
    return store_gone;
  }
}

void C10dCommunicator::fail(const std::string& operation, const std::exception& e) {
  std::string detail = e.what();
  if (const auto* c10 = dynamic_cast<const c10::Error*>(&e)) detail = c10->what_without_backtrace();
  detail = detail.substr(0, detail.find('\n'));
  const std::string silent = silent_ranks();
  throw UserError("rank " + std::to_string(env_.rank) + ": " + operation + " failed: " +
                  (silent.empty() ? "every rank still beats, one may be stuck" : silent + " exited or hangs") + " (" +
                  detail + ")");
}

// Runs `communicate` and counts its time as communication.
template <typename Communicate>
void C10dCommunicator::timed(Communicate communicate) {
  const auto start = Clock::now();
  communicate();
  communication_seconds_ += std::chrono::duration<double>(Clock::now() - start).count();
}

// Runs one collective to its end: timed, and a failure named.
template <typename Start>
void C10dCommunicator::collective(const char* operation, Start start_work) {
  timed([&] {
    c10::intrusive_ptr<c10d::Work> work;
    try {
      work = start_work();
    } catch (const std::exception& e) {
      fail(operation, e);
    }
    wait(work, operation);
  });
}

// On the device the backend reduces on: NCCL's is the GPU.
torch::Tensor C10dCommunicator::on_backend_device(const torch::Tensor& t) const {
  return kind_ == BackendKind::nccl ? t.cuda() : t;
}

void C10dCommunicator::all_reduce(torch::Tensor& tensor, c10d::ReduceOp op) {
  std::vector<torch::Tensor> tensors{tensor};
  c10d::AllreduceOptions options;
  options.reduceOp = op;
  options.timeout = timeout_;
  collective("an all-reduce", [&] { return backend_->allreduce(tensors, options); });
}

// A rank left waiting (dist.timeout_s may be minutes) says so after kWaitNotice, naming the
// ranks that stopped beating, then waits on.
void C10dCommunicator::wait(const c10::intrusive_ptr<c10d::Work>& work, const char* operation) {
  const auto notice = std::min(timeout_ / 2, kWaitNotice);
  try {
    if (finished_within(*work, notice)) return;
    const std::string silent = silent_ranks();
    std::cerr << "rank " << env_.rank << ": still waiting after " << notice.count() / 1000 << " s for " << operation
              << " (" << (silent.empty() ? "every rank still beats" : silent + " stopped beating") << "); giving up after "
              << timeout_.count() / 1000 << " s (dist.timeout_s)\n";
    work->wait(std::max(timeout_ - notice, std::chrono::milliseconds(1)));  // 0 would mean no limit
  } catch (const std::exception& e) {
    fail(operation, e);
  }
}

void C10dCommunicator::prepare_buckets(const std::vector<torch::Tensor>& parameters) {
  const bool same = parameters.size() == parameters_.size() &&
                    std::equal(parameters.begin(), parameters.end(), parameters_.begin(),
                               [](const torch::Tensor& a, const torch::Tensor& b) { return a.is_same(b); });
  if (same) return;
  if (!parameters_.empty()) throw std::logic_error("average_gradients: the set of parameters changed");
  parameters_ = parameters;
  slot_of_.assign(parameters.size(), {0, 0});
  for (size_t k = parameters.size(); k-- > 0;) {
    const int64_t bucket_elements = std::max<int64_t>(1, bucket_bytes_ / parameters[k].element_size());
    if (buckets_.empty() || (buckets_.back().flat.numel() + parameters[k].numel() > bucket_elements &&
                             !buckets_.back().members.empty())) {
      buckets_.emplace_back();
      buckets_.back().flat = torch::empty({0}, parameters[k].options());
    }
    auto& b = buckets_.back();
    slot_of_[k] = {buckets_.size() - 1, b.members.size()};
    b.offsets.push_back(b.flat.numel());
    b.members.push_back(k);
    b.flat = torch::empty({b.flat.numel() + parameters[k].numel()}, parameters[k].options());
  }
  // The hooks see each parameter's gradient of one backward, before it is added to .grad.
  // They live as long as the parameters; the trainer's model does not outlive this object.
  for (size_t k = 0; k < parameters.size(); ++k)
    parameters_[k].register_hook([this, k](const torch::Tensor& gradient) { on_gradient(k, gradient); });
}

void C10dCommunicator::fill(size_t index, const torch::Tensor& total) {
  const auto [bucket, member] = slot_of_[index];
  auto& b = buckets_[bucket];
  const int64_t offset = b.offsets[member];
  b.flat.slice(0, offset, offset + total.numel()).copy_(total.reshape({-1}));
  filled_[index] = true;
  ++b.filled;
}

void C10dCommunicator::on_gradient(size_t index, const torch::Tensor& gradient) {
  if (!expecting_ || filled_[index]) return;
  torch::NoGradGuard no_grad;
  const auto& accumulated = parameters_[index].grad();  // the earlier micro-batches' sum
  fill(index, accumulated.defined() ? accumulated + gradient : gradient);
  launch_complete_buckets();
}

void C10dCommunicator::launch_complete_buckets() {
  timed([&] {
    for (; launched_ < buckets_.size() && buckets_[launched_].filled == buckets_[launched_].members.size(); ++launched_) {
      std::vector<torch::Tensor> tensors{buckets_[launched_].flat};
      c10d::AllreduceOptions options;
      options.timeout = timeout_;
      buckets_[launched_].work = backend_->allreduce(tensors, options);
    }
  });
}

void C10dCommunicator::expect_gradients(const std::vector<torch::Tensor>& parameters) {
  if (parameters.empty()) return;
  prepare_buckets(parameters);
  filled_.assign(parameters.size(), false);
  for (auto& b : buckets_) b.filled = 0, b.work.reset();
  launched_ = 0;
  expecting_ = true;
}

// Buckets of flattened gradients, summed and divided by the world size. A parameter that got
// no gradient on some rank (a memory row not selected there) counts as zero there, so every
// rank issues the same collectives; one that got none on every rank stays without one, as
// in a single process (the optimizer then leaves it alone).
void C10dCommunicator::average_gradients(const std::vector<torch::Tensor>& parameters) {
  if (parameters.empty()) return;
  if (!expecting_) expect_gradients(parameters);  // nothing was reduced during backward
  torch::NoGradGuard no_grad;
  auto had_gradient = torch::zeros({static_cast<int64_t>(parameters.size())}, torch::kFloat32);
  for (size_t i = 0; i < parameters.size(); ++i) {
    const auto& grad = parameters[i].grad();
    if (grad.defined()) had_gradient[i] = 1;
    if (!filled_[i]) fill(i, grad.defined() ? grad : torch::zeros_like(parameters[i]));
  }
  launch_complete_buckets();
  expecting_ = false;
  timed([&] {
    for (auto& b : buckets_) wait(b.work, "an all-reduce of gradients");
  });
  const double world = env_.world_size;
  for (auto& b : buckets_) {
    b.flat.div_(world);
    for (size_t m = 0; m < b.members.size(); ++m) {
      auto& p = const_cast<torch::Tensor&>(parameters[b.members[m]]);
      if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);
      p.mutable_grad().copy_(b.flat.slice(0, b.offsets[m], b.offsets[m] + p.numel()).view_as(p));
    }
  }
  auto flags = had_gradient.to(parameters.front().device());
  all_reduce(flags, c10d::ReduceOp::SUM);
  flags = flags.cpu();
  for (size_t i = 0; i < parameters.size(); ++i)
    if (flags[i].item<float>() == 0) const_cast<torch::Tensor&>(parameters[i]).mutable_grad() = torch::Tensor();
}

double C10dCommunicator::average(double value) {
  auto t = on_backend_device(torch::tensor({value}, torch::kFloat64));
  all_reduce(t, c10d::ReduceOp::SUM);
  return t.item<double>() / env_.world_size;
}

bool C10dCommunicator::any(bool flag) {
  auto t = on_backend_device(torch::tensor({flag ? 1.0f : 0.0f}));
  all_reduce(t, c10d::ReduceOp::MAX);
  return t.item<float>() > 0;
}

void C10dCommunicator::broadcast(const std::vector<torch::Tensor>& tensors) {
  torch::NoGradGuard no_grad;
  for (const auto& t : tensors) {
    std::vector<torch::Tensor> one{t.detach()};
    c10d::BroadcastOptions options;
    options.rootRank = 0;
    options.timeout = timeout_;
    collective("a broadcast from rank 0", [&] { return backend_->broadcast(one, options); });
  }
}

// A 60-bit prefix of the XXH3 of every tensor's bytes, compared through MIN and MAX.
bool C10dCommunicator::identical(const std::vector<torch::Tensor>& tensors) {
  std::string bytes;
  for (const auto& t : tensors) {
    const auto c = t.detach().to(torch::kCPU).contiguous();
    bytes.append(static_cast<const char*>(c.data_ptr()), c.numel() * c.element_size());
  }
  const auto fingerprint = static_cast<int64_t>(std::stoull(checksum_bytes(bytes.data(), bytes.size()).substr(0, 15), nullptr, 16));
  auto low = on_backend_device(torch::tensor({fingerprint}, torch::kInt64)), high = low.clone();
  all_reduce(low, c10d::ReduceOp::MIN);
  all_reduce(high, c10d::ReduceOp::MAX);
  return low.item<int64_t>() == high.item<int64_t>();
}

void C10dCommunicator::require_identical(const std::vector<torch::Tensor>& tensors, const std::string& what) {
  if (!identical(tensors)) throw UserError("rank " + std::to_string(env_.rank) + ": " + what + " differ between the ranks");
}

bool C10dCommunicator::synchronize(const std::vector<torch::Tensor>& tensors) {
  if (tensors.empty() || identical(tensors)) return false;
  broadcast(tensors);
  return true;
}

std::vector<std::string> C10dCommunicator::hosts() {
  std::vector<std::string> names;
  for (int r = 0; r < env_.world_size; ++r) {
    auto v = store_->get("host/" + std::to_string(r));
    names.emplace_back(v.begin(), v.end());
  }
  return names;
}

}  // namespace xlhost::core::distributed
