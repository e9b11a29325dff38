// SRT ingest on libsrt: see srt_ingest.hpp for the model (threads, routing, rejection).
#include "twincast/control/srt_ingest.hpp"

#include "twincast/control/config.hpp"  // is_host_name

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <srt/access_control.h>
#include <srt/srt.h>
#include <sys/socket.h>
#include <syslog.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <csignal>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>
#include <utility>

#include "twincast/control/log.hpp"

namespace twincast::control {

namespace {

using Clock = std::chrono::steady_clock;
using dataplane::InputConfig;
using dataplane::InputKind;
using dataplane::SrtMode;

constexpr std::int64_t kPollMs = 100;                          // stop() reaction time
constexpr auto kReconnectBackoff = std::chrono::seconds(1);    // caller/rendezvous retry
constexpr auto kLogInterval = std::chrono::seconds(10);        // per input and cause (log::Logger)
constexpr auto kStatsInterval = std::chrono::milliseconds(500);
constexpr auto kHandshakeVerdict = std::chrono::milliseconds(1000);  // see sweep_pending()
constexpr auto kPendingGiveUp = std::chrono::seconds(10);
constexpr std::size_t kMaxMessage = 1500;  // live payload is at most 1456 bytes
constexpr int kMaxEvents = 16;
constexpr int kMaxReadsPerWake = 64;       // fairness between sockets of one listener
constexpr int kListenBacklog = 16;
constexpr std::size_t kMaxStreamId = 512;  // libsrt's limit
constexpr std::size_t kMinPassphrase = 10;
constexpr std::size_t kMaxPassphrase = 79;

// ---------------------------------------------------------------------------------------------
// libsrt lifetime: srt_startup/srt_cleanup once per process, refcounted.
std::mutex g_library_mu;
int g_library_refs = 0;

void library_acquire() {
  const std::lock_guard lock(g_library_mu);
  if (g_library_refs++ == 0) {
    srt_startup();
    // libsrt logs every failed handshake at error level; we log rejections ourselves,
    // rate-limited, so only its fatal messages stay.
    srt_setloglevel(LOG_CRIT);
  }
}

void library_release() {
  const std::lock_guard lock(g_library_mu);
  if (--g_library_refs == 0) srt_cleanup();
}

// ---------------------------------------------------------------------------------------------
// Addresses and strings.

struct SockAddr {
  sockaddr_storage storage{};
  int len = 0;
  const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }
};

std::optional<SockAddr> parse_address(const std::string& host, std::uint16_t port) {
  SockAddr a;
  sockaddr_in v4{};
  if (inet_pton(AF_INET, host.c_str(), &v4.sin_addr) == 1) {
    v4.sin_family = AF_INET;
    v4.sin_port = htons(port);
    std::memcpy(&a.storage, &v4, sizeof v4);
    a.len = static_cast<int>(sizeof v4);
    return a;
  }
  sockaddr_in6 v6{};
  if (inet_pton(AF_INET6, host.c_str(), &v6.sin6_addr) == 1) {
    v6.sin6_family = AF_INET6;
    v6.sin6_port = htons(port);
    std::memcpy(&a.storage, &v6, sizeof v6);
    a.len = static_cast<int>(sizeof v6);
    return a;
  }
  return std::nullopt;
}

// The address to use among getaddrinfo's answers (IPv4 first), with `port`.
std::optional<SockAddr> pick_address(const addrinfo* res, std::uint16_t port) {
  std::optional<SockAddr> out;
  for (const addrinfo* p = res; p != nullptr; p = p->ai_next) {
    if ((p->ai_family != AF_INET && p->ai_family != AF_INET6) || p->ai_addrlen > sizeof(sockaddr_storage)) continue;
    if (out && !(p->ai_family == AF_INET && out->storage.ss_family == AF_INET6)) continue;
    SockAddr a;
    std::memcpy(&a.storage, p->ai_addr, p->ai_addrlen);
    a.len = static_cast<int>(p->ai_addrlen);
    if (p->ai_family == AF_INET) reinterpret_cast<sockaddr_in*>(&a.storage)->sin_port = htons(port);
    else reinterpret_cast<sockaddr_in6*>(&a.storage)->sin6_port = htons(port);
    out = a;
  }
  return out;
}

// One host name lookup by glibc's getaddrinfo_a, shared by the thread that waits for it and
// glibc's completion notification: the second of the two to let go frees it. So a thread
// that stops waiting (stop()) never blocks on a slow resolver, and the lookup it abandons
// still has its memory until it ends.
struct Lookup {
  std::string host;
  addrinfo hints{};
  gaicb cb{};
  std::atomic<int> holders{2};

  static void release(Lookup* l) {
    if (l->holders.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
    if (l->cb.ar_result != nullptr) freeaddrinfo(l->cb.ar_result);
    delete l;
  }
  static void done(sigval v) { release(static_cast<Lookup*>(v.sival_ptr)); }
};

// A caller/rendezvous peer: a numeric address, else a host name resolved now (IPv4
// first). The wait for the resolver ends early, with nothing, once `stopping()` is true
// (checked every kPollMs).
template <class Stopping>
std::optional<SockAddr> resolve_address(const std::string& host, std::uint16_t port, Stopping&& stopping) {
  if (auto a = parse_address(host, port)) return a;
  auto* l = new Lookup;
  l->host = host;
  l->hints.ai_family = AF_UNSPEC;
  l->hints.ai_socktype = SOCK_DGRAM;
  l->cb.ar_name = l->host.c_str();
  l->cb.ar_request = &l->hints;
  sigevent notify{};
  notify.sigev_notify = SIGEV_THREAD;
  notify.sigev_notify_function = &Lookup::done;
  notify.sigev_value.sival_ptr = l;
  gaicb* list[1] = {&l->cb};
  if (getaddrinfo_a(GAI_NOWAIT, list, 1, &notify) != 0) {
    // Only this thread's share: glibc notifies even when it queued nothing (getaddrinfo_a.c,
    // total == 0: __gai_notify_only), and a request it queued before failing (EAI_AGAIN, no
    // memory for the notification) still runs on `l`. At worst the Lookup leaks.
    Lookup::release(l);
    return std::nullopt;
  }
  std::optional<SockAddr> out;
  for (;;) {
    const timespec wait{0, kPollMs * 1'000'000};
    (void)gai_suspend(list, 1, &wait);
    const int status = gai_error(&l->cb);
    if (status == EAI_INPROGRESS) {
      if (!stopping()) continue;
      // One still queued is dropped (no notification comes for it); one already running
      // goes on, and its notification lets go of it.
      if (gai_cancel(&l->cb) == EAI_CANCELED) Lookup::release(l);
      break;
    }
    if (status == 0) out = pick_address(l->cb.ar_result, port);
    break;
  }
  Lookup::release(l);
  return out;
}

bool is_unspecified(const SockAddr& a) {
  if (a.storage.ss_family == AF_INET) {
    sockaddr_in v4{};
    std::memcpy(&v4, &a.storage, sizeof v4);
    return v4.sin_addr.s_addr == htonl(INADDR_ANY);
  }
  sockaddr_in6 v6{};
  std::memcpy(&v6, &a.storage, sizeof v6);
  return IN6_IS_ADDR_UNSPECIFIED(&v6.sin6_addr);
}

// The wildcard address of `like`'s family with `port`.
SockAddr any_address(const SockAddr& like, std::uint16_t port) {
  return *parse_address(like.storage.ss_family == AF_INET6 ? "::" : "0.0.0.0", port);
}

std::string peer_string(const sockaddr* sa) {
  if (sa == nullptr) return "?";
  std::array<char, INET6_ADDRSTRLEN> text{};
  if (sa->sa_family == AF_INET) {
    sockaddr_in v4{};
    std::memcpy(&v4, sa, sizeof v4);
    inet_ntop(AF_INET, &v4.sin_addr, text.data(), static_cast<socklen_t>(text.size()));
    return std::string(text.data()) + ":" + std::to_string(ntohs(v4.sin_port));
  }
  if (sa->sa_family == AF_INET6) {
    sockaddr_in6 v6{};
    std::memcpy(&v6, sa, sizeof v6);
    inet_ntop(AF_INET6, &v6.sin6_addr, text.data(), static_cast<socklen_t>(text.size()));
    std::string out = "[";  // appended piecewise: GCC 12 warns falsely on "[" + string
    out += text.data();
    out += "]:";
    out += std::to_string(ntohs(v6.sin6_port));
    return out;
  }
  return "?";
}

// For logs: printable ASCII only, bounded.
std::string printable(std::string_view s, std::size_t max = 64) {
  std::string out;
  for (const char c : s.substr(0, max)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
  if (s.size() > max) out += "...";
  return out;
}

std::string srt_error_text() {
  const char* e = srt_getlasterror_str();
  return e != nullptr ? e : "unknown error";
}

std::string reject_text(int reason) {
  if (reason >= SRT_REJX_FALLBACK) return "rejected by peer (code " + std::to_string(reason) + ")";
  const char* s = srt_rejectreason_str(reason);
  return s != nullptr ? s : "handshake failed";
}

// ---------------------------------------------------------------------------------------------
// Socket options.

bool set_bool(SRTSOCKET s, SRT_SOCKOPT opt, bool v) { return srt_setsockflag(s, opt, &v, sizeof v) == 0; }
bool set_int(SRTSOCKET s, SRT_SOCKOPT opt, int v) { return srt_setsockflag(s, opt, &v, sizeof v) == 0; }
bool set_string(SRTSOCKET s, SRT_SOCKOPT opt, const std::string& v) {
  return srt_setsockflag(s, opt, v.data(), static_cast<int>(v.size())) == 0;
}

// Options every socket gets before it is bound/connected: live mode, non-blocking (threads
// wait in srt_epoll with a timeout so they can stop).
bool set_base_options(SRTSOCKET s) {
  return set_int(s, SRTO_TRANSTYPE, SRTT_LIVE) && set_bool(s, SRTO_RCVSYN, false) &&
         set_bool(s, SRTO_SNDSYN, false);
}

// Per-input options: latency and encryption. Also applied to a listener's new socket inside
// the listen callback, which is how libsrt supports one passphrase per streamid. The key
// length is the initiator's choice: a responder (listener) adopts the caller's, and setting
// SRTO_PBKEYLEN on it breaks decryption in libsrt 1.5.1 (connected, nothing delivered).
bool set_input_options(SRTSOCKET s, const InputConfig& c, bool initiator) {
  if (!set_int(s, SRTO_LATENCY, static_cast<int>(c.latency_ms))) return false;
  if (c.passphrase.empty()) return true;
  if (initiator && !set_int(s, SRTO_PBKEYLEN, c.key_length)) return false;
  return set_string(s, SRTO_PASSPHRASE, c.passphrase);
}

bool has_error(int events) { return (events & static_cast<int>(SRT_EPOLL_ERR)) != 0; }

void name_thread(const char* name) { pthread_setname_np(pthread_self(), name); }

constexpr std::string_view kAccessControl = "#!::";

// The value of `key` in an access-control streamid "#!::k=v,..." (empty when absent, or when
// the streamid is not of that form).
std::string_view streamid_value(std::string_view streamid, std::string_view key) {
  if (streamid.substr(0, kAccessControl.size()) != kAccessControl) return {};
  std::string_view rest = streamid.substr(kAccessControl.size());
  for (;;) {
    const std::size_t comma = rest.find(',');
    const std::string_view item = rest.substr(0, comma);
    const std::size_t eq = item.find('=');
    if (eq != std::string_view::npos && item.substr(0, eq) == key) return item.substr(eq + 1);
    if (comma == std::string_view::npos) return {};
    rest = rest.substr(comma + 1);
  }
}

}  // namespace

std::string_view srt_streamid_resource(std::string_view streamid) {
  if (streamid.substr(0, kAccessControl.size()) != kAccessControl) return streamid;
  return streamid_value(streamid, "r");
}

// =============================================================================================

struct SrtIngest::Impl {
  struct InputState {
    InputConfig cfg;
    std::atomic<std::uint64_t> bytes{0};
    std::atomic<std::uint64_t> packets{0};
    mutable std::mutex mu;   // guards the fields below
    InputStats stats;        // bytes/packets are filled in by snapshot()
    // `lost` at each stats poll until its losses are settled (recovered or dropped).
    std::deque<std::pair<Clock::time_point, std::uint64_t>> lost_polls;
    std::uint64_t lost_settled = 0;
    // Losses neither recovered nor dropped when their connection ended (unsettled then, so
    // never repaired now; or lost but never dropped).
    std::uint64_t lost_abandoned = 0;
  };

  // A caller that passed the listen callback and is expected from srt_accept.
  struct Pending {
    SRTSOCKET sock;
    std::size_t input;
    Clock::time_point since;
    std::string peer;
  };

  struct Listener {
    Impl* impl = nullptr;
    std::string address;
    std::uint16_t port = 0;
    std::vector<std::size_t> inputs;
    SRTSOCKET sock = SRT_INVALID_SOCK;
    std::mutex mu;                 // guards pending
    std::vector<Pending> pending;
  };

  struct Conn {
    SRTSOCKET sock;
    std::size_t input;
    Clock::time_point last_stats;
  };

  Impl(std::vector<InputConfig> inputs, Sink sink);
  ~Impl();

  void start();
  void stop();

  bool stopping() const { return stop_.load(std::memory_order_acquire); }
  // One line per input and cause per kLogInterval (this ingest's own limiter, so one
  // SrtIngest's trouble never hides another's).
  void log_input(log::Level level, std::size_t i, std::string_view cause, const std::string& what);

  // I/O-thread helpers.
  bool receive(SRTSOCKET s, std::size_t input);
  void poll_stats(SRTSOCKET s, std::size_t input);
  void connected(std::size_t input, const std::string& peer);
  void disconnected(SRTSOCKET s, std::size_t input);

  static int on_listen(void* opaque, SRTSOCKET ns, int hs_version, const sockaddr* peer,
                       const char* streamid);
  int route_caller(Listener& l, SRTSOCKET ns, const sockaddr* peer, const char* streamid);
  void run_listener(Listener& l);
  void accept_callers(Listener& l, int eid, std::vector<Conn>& conns);
  void sweep_pending(Listener& l);
  void run_caller(std::size_t i);

  InputStats snapshot(std::size_t i) const;

  bool library_ = false;
  std::vector<std::unique_ptr<InputState>> inputs_;
  std::vector<std::unique_ptr<Listener>> listeners_;
  Sink sink_;
  std::vector<std::thread> threads_;
  bool started_ = false;
  std::atomic<bool> stop_{false};
  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  log::Logger log_{log::Options{.interval = kLogInterval}};
};

namespace {

std::string input_label(std::size_t i, const InputConfig& c) {
  return "srt input #" + std::to_string(i) + " '" + printable(c.name) + "'";
}

// Every configuration error at once; secrets are never quoted.
void validate(const std::vector<InputConfig>& inputs) {
  std::vector<std::string> errors;
  struct PortUse {
    std::string address;
    std::map<std::string, std::size_t> streamids;  // resource -> input
  };
  std::map<std::uint16_t, PortUse> listen_ports;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const InputConfig& c = inputs[i];
    const std::string label = input_label(i, c);
    if (c.kind != InputKind::kSrt) {
      errors.push_back(label + ": not an SRT input");
      continue;
    }
    if (c.srt_port == 0) errors.push_back(label + ": srt_port is required");
    const auto addr = parse_address(c.srt_address, c.srt_port);
    if (!addr && c.srt_mode != SrtMode::kListener && is_host_name(c.srt_address)) {
      // A host name: resolved at each connection attempt.
    } else if (!addr) {
      errors.push_back(label + ": srt_address '" + printable(c.srt_address) +
                       "' is not a numeric IPv4/IPv6 address");
    } else if (c.srt_mode != SrtMode::kListener && is_unspecified(*addr)) {
      errors.push_back(label + ": srt_address must name the remote host in caller/rendezvous mode");
    }
    if (!c.passphrase.empty() &&
        (c.passphrase.size() < kMinPassphrase || c.passphrase.size() > kMaxPassphrase)) {
      errors.push_back(label + ": passphrase must be 10..79 characters");
    }
    if (c.key_length != 16 && c.key_length != 24 && c.key_length != 32) {
      errors.push_back(label + ": key_length must be 16, 24 or 32 (is " +
                       std::to_string(c.key_length) + ")");
    }
    if (c.streamid.size() > kMaxStreamId) errors.push_back(label + ": streamid longer than 512 bytes");
    if (c.srt_mode == SrtMode::kListener && c.srt_port != 0) {
      auto [it, fresh] = listen_ports.try_emplace(c.srt_port);
      PortUse& use = it->second;
      if (fresh) use.address = c.srt_address;
      if (use.address != c.srt_address) {
        errors.push_back(label + ": listeners on port " + std::to_string(c.srt_port) +
                         " must share one bind address ('" + printable(use.address) + "')");
      }
      const std::string resource(srt_streamid_resource(c.streamid));
      const auto [dup, inserted] = use.streamids.try_emplace(resource, i);
      if (!inserted) {
        errors.push_back(label + ": streamid '" + printable(resource) + "' on port " +
                         std::to_string(c.srt_port) + " is already used by input #" +
                         std::to_string(dup->second));
      }
    }
  }
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const InputConfig& c = inputs[i];
    if (c.kind != InputKind::kSrt || c.srt_mode != SrtMode::kRendezvous) continue;
    const std::uint16_t local = c.srt_local_port != 0 ? c.srt_local_port : c.srt_port;
    if (listen_ports.count(local) != 0) {
      errors.push_back(input_label(i, c) + ": rendezvous local port " + std::to_string(local) +
                       " is already a listener port");
    }
  }
  if (errors.empty()) return;
  std::string message = "invalid SRT configuration: ";
  for (std::size_t k = 0; k < errors.size(); ++k) message += (k != 0 ? "; " : "") + errors[k];
  throw std::invalid_argument(message);
}

}  // namespace

SrtIngest::Impl::Impl(std::vector<InputConfig> inputs, Sink sink) : sink_(std::move(sink)) {
  if (!sink_) throw std::invalid_argument("SrtIngest: the sink is empty");
  validate(inputs);
  for (auto& c : inputs) {
    auto state = std::make_unique<InputState>();
    state->cfg = std::move(c);
    inputs_.push_back(std::move(state));
  }
  std::map<std::uint16_t, Listener*> by_port;
  for (std::size_t i = 0; i < inputs_.size(); ++i) {
    const InputConfig& c = inputs_[i]->cfg;
    if (c.srt_mode != SrtMode::kListener) continue;
    Listener*& l = by_port[c.srt_port];
    if (l == nullptr) {
      listeners_.push_back(std::make_unique<Listener>());
      l = listeners_.back().get();
      l->impl = this;
      l->address = c.srt_address;
      l->port = c.srt_port;
    }
    l->inputs.push_back(i);
  }
  library_acquire();
  library_ = true;
}

SrtIngest::Impl::~Impl() {
  stop();
  // srt_cleanup (when last) joins libsrt's threads, so no listen callback can still be using
  // a Listener when they are freed below.
  if (library_) library_release();
  listeners_.clear();
}

void SrtIngest::Impl::start() {
  if (started_) throw std::logic_error("SrtIngest::start: already started");
  started_ = true;
  try {
    for (auto& lp : listeners_) {
      Listener& l = *lp;
      const SockAddr addr = *parse_address(l.address, l.port);
      l.sock = srt_create_socket();
      const std::string where = printable(l.address) + ":" + std::to_string(l.port);
      if (l.sock == SRT_INVALID_SOCK || !set_base_options(l.sock) ||
          srt_bind(l.sock, addr.get(), addr.len) == SRT_ERROR ||
          srt_listen_callback(l.sock, &Impl::on_listen, &l) == SRT_ERROR ||
          srt_listen(l.sock, kListenBacklog) == SRT_ERROR) {
        throw std::runtime_error("srt: cannot listen on " + where + ": " + srt_error_text());
      }
    }
    for (auto& lp : listeners_) {
      Listener* l = lp.get();
      threads_.emplace_back([this, l] { run_listener(*l); });
    }
    for (std::size_t i = 0; i < inputs_.size(); ++i) {
      if (inputs_[i]->cfg.srt_mode != SrtMode::kListener) {
        threads_.emplace_back([this, i] { run_caller(i); });
      }
    }
  } catch (...) {
    stop();
    throw;
  }
}

void SrtIngest::Impl::stop() {
  {
    const std::lock_guard lock(stop_mu_);
    stop_.store(true, std::memory_order_release);
  }
  stop_cv_.notify_all();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
  // Listeners whose thread never started (start() failed half-way).
  for (auto& l : listeners_) {
    if (l->sock != SRT_INVALID_SOCK) {
      srt_close(l->sock);
      l->sock = SRT_INVALID_SOCK;
    }
  }
}

void SrtIngest::Impl::log_input(log::Level level, std::size_t i, std::string_view cause, const std::string& what) {
  // The input's name is the configuration's (validated: [a-z0-9_-]); srt_input is its
  // index in this ingest, which tells apart equal names in different channels.
  log_.write(level, cause, {{"srt_input", i}, {"input", printable(inputs_[i]->cfg.name)}}, what);
}

// ---------------------------------------------------------------------------------------------
// Data path (I/O threads).

// Reads what is ready on `s` into a stack buffer and hands it to the sink; false when the
// connection is broken. No allocation.
bool SrtIngest::Impl::receive(SRTSOCKET s, std::size_t input) {
  std::array<std::uint8_t, kMaxMessage> buf;
  InputState& st = *inputs_[input];
  for (int k = 0; k < kMaxReadsPerWake; ++k) {
    const int n = srt_recvmsg(s, reinterpret_cast<char*>(buf.data()), static_cast<int>(buf.size()));
    if (n > 0) {
      const auto len = static_cast<std::size_t>(n);
      sink_(input, std::span<const std::uint8_t>(buf.data(), len));
      st.bytes.fetch_add(len, std::memory_order_relaxed);
      st.packets.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    if (n == 0) return true;
    return srt_getlasterror(nullptr) == SRT_EASYNCRCV;
  }
  return true;
}

// Adds libsrt's receive counters since the previous call (srt_bstats clears them).
void SrtIngest::Impl::poll_stats(SRTSOCKET s, std::size_t input) {
  SRT_TRACEBSTATS perf{};
  if (srt_bstats(s, &perf, 1) != 0) return;
  const auto count = [](auto v) { return v > 0 ? static_cast<std::uint64_t>(v) : 0U; };
  InputState& st = *inputs_[input];
  const std::lock_guard lock(st.mu);
  st.stats.rtt_ms = perf.msRTT;
  st.stats.lost += count(perf.pktRcvLoss);
  st.stats.retransmitted += count(perf.pktRcvRetrans);
  st.stats.belated += count(perf.pktRcvBelated);
  st.stats.dropped += count(perf.pktRcvDrop);
  st.stats.undecrypted += count(perf.pktRcvUndecrypt);
  // A loss is repaired or dropped by its play time, a latency after it is seen: recovered is
  // lost - dropped over the losses seen a latency (and a poll) ago. Never lower than before
  // (a counter), also when dropped counts packets that were not lost.
  const auto now = Clock::now();
  const auto settle = std::chrono::milliseconds(std::max(perf.msRcvTsbPdDelay, 0)) + kStatsInterval;
  st.lost_polls.emplace_back(now, st.stats.lost);
  while (now - st.lost_polls.front().first >= settle) {
    st.lost_settled = st.lost_polls.front().second;
    st.lost_polls.pop_front();
  }
  if (st.lost_settled > st.lost_abandoned + st.stats.dropped) {
    st.stats.recovered =
        std::max(st.stats.recovered, st.lost_settled - st.lost_abandoned - st.stats.dropped);
  }
}

void SrtIngest::Impl::connected(std::size_t input, const std::string& peer) {
  InputState& st = *inputs_[input];
  {
    const std::lock_guard lock(st.mu);
    st.stats.connected = true;
    st.stats.peer = peer;
    ++st.stats.connections;
  }
  log_input(log::Level::kInfo, input, "srt_connected", "connected to " + peer);
  sink_(input, {});  // a new stream starts
}

void SrtIngest::Impl::disconnected(SRTSOCKET s, std::size_t input) {
  poll_stats(s, input);
  InputState& st = *inputs_[input];
  std::string peer;
  {
    const std::lock_guard lock(st.mu);
    st.stats.connected = false;
    peer = st.stats.peer;
    // The losses not settled yet never will be (libsrt drops nothing more on this socket):
    // not counted recovered, as whether a retransmission repaired them is not known. Those
    // already dropped are in `dropped`, so not abandoned too: from here, lost_settled -
    // lost_abandoned - dropped starts again at `recovered`, and the next connection's
    // repairs add to it.
    st.lost_settled = st.stats.lost;
    const std::uint64_t accounted = st.stats.dropped + st.stats.recovered;
    st.lost_abandoned = st.stats.lost > accounted ? st.stats.lost - accounted : 0;
    st.lost_polls.clear();
  }
  log_input(log::Level::kNotice, input, "srt_disconnected", "connection with " + peer + " ended");
}

// ---------------------------------------------------------------------------------------------
// Listener.

int SrtIngest::Impl::on_listen(void* opaque, SRTSOCKET ns, int /*hs_version*/, const sockaddr* peer,
                               const char* streamid) {
  auto* l = static_cast<Listener*>(opaque);
  try {
    return l->impl->route_caller(*l, ns, peer, streamid);
  } catch (...) {  // nothing may escape into libsrt
    srt_setrejectreason(ns, SRT_REJX_ISE);
    return -1;
  }
}

// Runs on libsrt's receiver thread, before the handshake completes: picks the input by
// streamid and gives the new socket that input's passphrase and latency.
int SrtIngest::Impl::route_caller(Listener& l, SRTSOCKET ns, const sockaddr* peer,
                                  const char* streamid) {
  if (stopping()) {
    srt_setrejectreason(ns, SRT_REJX_DOWN);
    return -1;
  }
  const std::string_view sid = streamid != nullptr ? std::string_view(streamid) : std::string_view();
  const std::string_view resource = srt_streamid_resource(sid);
  std::optional<std::size_t> target;
  if (l.inputs.size() == 1 && inputs_[l.inputs[0]]->cfg.streamid.empty()) {
    target = l.inputs[0];
  } else {
    for (const std::size_t i : l.inputs) {
      if (srt_streamid_resource(inputs_[i]->cfg.streamid) == resource) target = i;
    }
  }
  const std::string who = peer_string(peer);
  if (!target) {
    for (const std::size_t i : l.inputs) {
      const std::lock_guard lock(inputs_[i]->mu);
      ++inputs_[i]->stats.rejected_callers;
    }
    log_.write(log::Level::kWarn, "srt_unknown_streamid", {{"port", l.port}, {"peer", who}},
               "rejected caller " + who + ": unknown streamid '" + printable(resource) + "'");
    srt_setrejectreason(ns, SRT_REJX_NOTFOUND);
    return -1;
  }
  // m=request: the caller wants to receive (a player, a probe), which an ingest cannot serve;
  // accepted, it would replace the encoder publishing on this streamid. Encoders send
  // m=publish or no m at all.
  if (streamid_value(sid, "m") == "request") {
    {
      const std::lock_guard lock(inputs_[*target]->mu);
      ++inputs_[*target]->stats.rejected_callers;
    }
    log_input(log::Level::kWarn, *target, "srt_reject",
              "rejected caller " + who + ": its streamid asks to receive (m=request); this input takes a stream");
    srt_setrejectreason(ns, SRT_REJX_BAD_MODE);
    return -1;
  }
  if (!set_input_options(ns, inputs_[*target]->cfg, false)) {
    log_input(log::Level::kError, *target, "srt_socket_options", "cannot set options for caller " + who + ": " + srt_error_text());
    srt_setrejectreason(ns, SRT_REJX_ISE);
    return -1;
  }
  const std::lock_guard lock(l.mu);
  l.pending.push_back(Pending{ns, *target, Clock::now(), who});
  return 0;
}

// A caller that passed the listen callback is queued for srt_accept within the same libsrt
// call, unless the rest of the handshake failed (wrong or missing passphrase, ...). So one
// still pending after kHandshakeVerdict — with every queued socket accepted first — was
// rejected by libsrt.
void SrtIngest::Impl::sweep_pending(Listener& l) {
  // libsrt is never called under l.mu: the listen callback takes l.mu on libsrt's thread.
  std::vector<Pending> old;
  const auto now = Clock::now();
  {
    const std::lock_guard lock(l.mu);
    for (const Pending& p : l.pending) {
      if (now - p.since >= kHandshakeVerdict) old.push_back(p);
    }
  }
  if (old.empty()) return;
  std::vector<Pending> failed;
  for (Pending& p : old) {
    if (srt_getsockstate(p.sock) != SRTS_CONNECTED || now - p.since >= kPendingGiveUp) {
      failed.push_back(std::move(p));
    }
  }
  {
    const std::lock_guard lock(l.mu);
    std::erase_if(l.pending, [&](const Pending& p) {
      return std::any_of(failed.begin(), failed.end(), [&](const Pending& f) { return f.sock == p.sock; });
    });
  }
  for (const Pending& p : failed) {
    const int reason = srt_getrejectreason(p.sock);
    {
      const std::lock_guard lock(inputs_[p.input]->mu);
      ++inputs_[p.input]->stats.rejected_callers;
    }
    // libsrt has usually freed the socket by now, so the reason is rarely known.
    std::string why = "handshake failed: wrong or missing passphrase, or incompatible settings";
    if (reason == SRT_REJ_BADSECRET || reason == SRT_REJ_UNSECURE) {
      why = "wrong or missing passphrase";
    } else if (reason > SRT_REJ_UNKNOWN) {
      why = "handshake failed: " + reject_text(reason);
    }
    log_input(log::Level::kWarn, p.input, "srt_reject", "rejected caller " + p.peer + ": " + why);
  }
}

void SrtIngest::Impl::accept_callers(Listener& l, int eid, std::vector<Conn>& conns) {
  for (;;) {
    sockaddr_storage peer{};
    int len = static_cast<int>(sizeof peer);
    const SRTSOCKET s = srt_accept(l.sock, reinterpret_cast<sockaddr*>(&peer), &len);
    if (s == SRT_INVALID_SOCK) return;
    std::optional<std::size_t> input;
    {
      const std::lock_guard lock(l.mu);
      const auto it = std::find_if(l.pending.begin(), l.pending.end(),
                                   [s](const Pending& p) { return p.sock == s; });
      if (it != l.pending.end()) {
        input = it->input;
        l.pending.erase(it);
      }
    }
    if (!input) {  // not routed by our callback: cannot happen, but never leak it
      srt_close(s);
      continue;
    }
    // An encoder that restarts replaces its previous connection.
    const auto old = std::find_if(conns.begin(), conns.end(),
                                  [&](const Conn& c) { return c.input == *input; });
    if (old != conns.end()) {
      disconnected(old->sock, old->input);
      srt_epoll_remove_usock(eid, old->sock);
      srt_close(old->sock);
      conns.erase(old);
    }
    const int events = static_cast<int>(SRT_EPOLL_IN | SRT_EPOLL_ERR);
    if (srt_epoll_add_usock(eid, s, &events) == SRT_ERROR) {
      log_input(log::Level::kError, *input, "srt_epoll", "cannot watch the new connection: " + srt_error_text());
      srt_close(s);
      continue;
    }
    conns.push_back(Conn{s, *input, Clock::now()});
    connected(*input, peer_string(reinterpret_cast<const sockaddr*>(&peer)));
  }
}

void SrtIngest::Impl::run_listener(Listener& l) {
  name_thread("srt-listen");
  std::vector<Conn> conns;
  conns.reserve(l.inputs.size() + 1);
  const int eid = srt_epoll_create();
  const int events = static_cast<int>(SRT_EPOLL_IN | SRT_EPOLL_ERR);
  if (eid < 0 || srt_epoll_add_usock(eid, l.sock, &events) == SRT_ERROR) {
    log_.write(log::Level::kError, "srt_epoll", {{"port", l.port}}, "cannot create epoll: " + srt_error_text() +
                                                                         "; this port's callers are not served");
  } else {
    std::array<SRT_EPOLL_EVENT, kMaxEvents> ready{};
    while (!stopping()) {
      const int n = srt_epoll_uwait(eid, ready.data(), kMaxEvents, kPollMs);
      for (int k = 0; k < std::min(n, kMaxEvents); ++k) {
        const SRT_EPOLL_EVENT ev = ready[static_cast<std::size_t>(k)];
        if (ev.fd == l.sock) continue;  // accepted below, after the data
        const auto c = std::find_if(conns.begin(), conns.end(),
                                    [&](const Conn& x) { return x.sock == ev.fd; });
        if (c == conns.end()) continue;
        const bool alive = receive(c->sock, c->input) && !has_error(ev.events) &&
                           srt_getsockstate(c->sock) == SRTS_CONNECTED;
        if (!alive) {
          disconnected(c->sock, c->input);
          srt_epoll_remove_usock(eid, c->sock);
          srt_close(c->sock);
          conns.erase(c);
        }
      }
      accept_callers(l, eid, conns);
      sweep_pending(l);
      const auto now = Clock::now();
      for (Conn& c : conns) {
        if (now - c.last_stats >= kStatsInterval) {
          poll_stats(c.sock, c.input);
          c.last_stats = now;
        }
      }
    }
  }
  for (const Conn& c : conns) {
    disconnected(c.sock, c.input);
    srt_close(c.sock);
  }
  if (eid >= 0) srt_epoll_release(eid);
  srt_close(l.sock);
  l.sock = SRT_INVALID_SOCK;
}

// ---------------------------------------------------------------------------------------------
// Caller and rendezvous: connect, receive until the connection breaks, back off, again.

void SrtIngest::Impl::run_caller(std::size_t i) {
  name_thread("srt-caller");
  const InputConfig& c = inputs_[i]->cfg;
  const bool rendezvous = c.srt_mode == SrtMode::kRendezvous;
  std::array<SRT_EPOLL_EVENT, 2> ready{};

  while (!stopping()) {
    const std::optional<SockAddr> resolved = resolve_address(c.srt_address, c.srt_port, [this] { return stopping(); });
    if (stopping()) break;
    if (!resolved) {
      log_input(log::Level::kWarn, i, "srt_resolve_failed", "cannot resolve '" + printable(c.srt_address) + "'");
      std::unique_lock lock(stop_mu_);
      stop_cv_.wait_for(lock, kReconnectBackoff, [this] { return stopping(); });
      continue;
    }
    const SockAddr remote = *resolved;
    const SockAddr local = any_address(remote, c.srt_local_port != 0 ? c.srt_local_port : c.srt_port);
    const std::string remote_text = peer_string(remote.get());
    const SRTSOCKET s = srt_create_socket();
    const int eid = srt_epoll_create();
    const int connect_events = static_cast<int>(SRT_EPOLL_OUT | SRT_EPOLL_ERR);
    bool ok = s != SRT_INVALID_SOCK && eid >= 0 && set_base_options(s) && set_input_options(s, c, true) &&
              (c.streamid.empty() || set_string(s, SRTO_STREAMID, c.streamid)) &&
              (!rendezvous || set_bool(s, SRTO_RENDEZVOUS, true)) &&
              srt_epoll_add_usock(eid, s, &connect_events) == 0;
    if (ok) {
      ok = (rendezvous ? srt_rendezvous(s, local.get(), local.len, remote.get(), remote.len)
                       : srt_connect(s, remote.get(), remote.len)) != SRT_ERROR;
    }
    if (!ok) log_input(log::Level::kWarn, i, "srt_connect_failed", "cannot connect to " + remote_text + ": " + srt_error_text());

    // Wait for the handshake.
    bool up = false;
    while (ok && !stopping()) {
      srt_epoll_uwait(eid, ready.data(), static_cast<int>(ready.size()), kPollMs);
      const SRT_SOCKSTATUS state = srt_getsockstate(s);
      if (state == SRTS_CONNECTED) {
        up = true;
        break;
      }
      if (state != SRTS_CONNECTING && state != SRTS_OPENED && state != SRTS_INIT) {
        log_input(log::Level::kWarn, i, "srt_connect_failed",
                  "connection to " + remote_text + " failed: " + reject_text(srt_getrejectreason(s)));
        break;
      }
    }

    if (up) {
      const int receive_events = static_cast<int>(SRT_EPOLL_IN | SRT_EPOLL_ERR);
      srt_epoll_update_usock(eid, s, &receive_events);
      connected(i, remote_text);
      auto last_stats = Clock::now();
      while (!stopping()) {
        const int n = srt_epoll_uwait(eid, ready.data(), static_cast<int>(ready.size()), kPollMs);
        bool alive = true;
        if (n > 0) alive = receive(s, i) && !has_error(ready[0].events);
        alive = alive && srt_getsockstate(s) == SRTS_CONNECTED;
        if (!alive) break;
        if (Clock::now() - last_stats >= kStatsInterval) {
          poll_stats(s, i);
          last_stats = Clock::now();
        }
      }
      disconnected(s, i);
    }
    if (eid >= 0) srt_epoll_release(eid);
    if (s != SRT_INVALID_SOCK) srt_close(s);
    std::unique_lock lock(stop_mu_);
    stop_cv_.wait_for(lock, kReconnectBackoff, [this] { return stopping(); });
  }
}

SrtIngest::InputStats SrtIngest::Impl::snapshot(std::size_t i) const {
  const InputState& st = *inputs_.at(i);
  InputStats out;
  {
    const std::lock_guard lock(st.mu);
    out = st.stats;
  }
  out.bytes = st.bytes.load(std::memory_order_relaxed);
  out.packets = st.packets.load(std::memory_order_relaxed);
  return out;
}

// =============================================================================================

SrtIngest::SrtIngest(std::vector<dataplane::InputConfig> inputs, Sink sink)
    : impl_(std::make_unique<Impl>(std::move(inputs), std::move(sink))) {}

SrtIngest::~SrtIngest() = default;

void SrtIngest::start() { impl_->start(); }
void SrtIngest::stop() { impl_->stop(); }
std::size_t SrtIngest::size() const { return impl_->inputs_.size(); }
const dataplane::InputConfig& SrtIngest::input(std::size_t i) const { return impl_->inputs_.at(i)->cfg; }
SrtIngest::InputStats SrtIngest::stats(std::size_t i) const { return impl_->snapshot(i); }

}  // namespace twincast::control
