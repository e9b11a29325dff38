// SRT ingest: receives MPEG-TS over SRT (libsrt) on control-side threads and hands every
// message to a sink (later a lock-free ring into the data plane).
//
// Threads: one per listening (address, port) — it accepts callers and receives the data of
// every input on that port through one srt_epoll — and one per caller/rendezvous input.
// The sink runs on those threads; it must be fast and must not throw.
//
// Listener routing: several inputs may share a port and are told apart by the streamid the
// caller sends, matched on its resource name: a plain "name", or the SRT access-control
// form "#!::r=name,m=publish,u=user" (r= is taken; a caller with m=request, which wants to
// receive, is rejected; other keys are ignored). The decision is taken in libsrt's listen
// callback, before the handshake completes; the callback also sets the input's passphrase
// and latency on the new socket, so each streamid has its own passphrase. An input with an
// empty streamid takes every caller when it is the only input on its port; among several it
// takes the callers that send no streamid. A new caller for an input that already has one
// replaces it (encoder restart).
// key_length applies where we initiate (caller, rendezvous); a listener adopts the caller's
// key length, as SRT specifies for the responder.
//
// Rejected callers (unknown streamid, m=request, wrong or missing passphrase, any failed
// handshake after routing) are counted in InputStats::rejected_callers and logged to stderr at
// most once per 10 s per input. An unknown streamid counts on every input of that port.
// Secrets never appear in logs or exception messages. libsrt's own log output is limited to
// fatal messages while an SrtIngest exists.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "twincast/dataplane/config.hpp"

namespace twincast::control {

// The resource name of a streamid: "r=" of "#!::k=v,..." (empty when absent), else the whole
// string. Never throws, any bytes are fine.
std::string_view srt_streamid_resource(std::string_view streamid);

class SrtIngest {
 public:
  // Called on an SRT thread for every received message (usually 1316 bytes = 7 TS packets),
  // and with no bytes when a connection starts, before its first message (a new stream:
  // what came before may have ended inside a TS packet). `input` indexes the vector given
  // to the constructor.
  using Sink = std::function<void(std::size_t input, std::span<const std::uint8_t> ts_bytes)>;

  struct InputStats {
    bool connected = false;
    std::string peer;                   // "address:port" of the current (or last) peer
    std::uint64_t bytes = 0;            // handed to the sink, all connections
    std::uint64_t packets = 0;          // SRT messages handed to the sink
    double rtt_ms = 0;                  // libsrt's smoothed RTT (msRTT), last sample
    std::uint64_t lost = 0;             // pktRcvLoss: gaps detected by the receiver
    std::uint64_t retransmitted = 0;    // pktRcvRetrans: retransmitted packets received
    std::uint64_t recovered = 0;        // losses repaired in time: lost - dropped, counted a
                                        // latency after the loss; never decreases
    std::uint64_t belated = 0;          // pktRcvBelated: arrived after their play time
    std::uint64_t dropped = 0;          // pktRcvDrop: never delivered (too late to play)
    std::uint64_t undecrypted = 0;      // pktRcvUndecrypt
    std::uint64_t rejected_callers = 0; // unknown streamid, wrong/missing passphrase
    std::uint64_t connections = 0;      // successful connections so far
  };

  // Validates every input (collecting all errors) and throws std::invalid_argument listing
  // them: kind must be kSrt, srt_port set, srt_address a numeric IPv4/IPv6 address
  // (caller/rendezvous: not unspecified, or a host name resolved at each connection
  // attempt), passphrase empty or 10..79 characters, key_length
  // 16/24/32, streamid at most 512 bytes, listeners on one port share one bind address and
  // have distinct streamids. libsrt is started here (refcounted per process).
  SrtIngest(std::vector<dataplane::InputConfig> inputs, Sink sink);
  ~SrtIngest();  // stop()s, then releases libsrt
  SrtIngest(const SrtIngest&) = delete;
  SrtIngest& operator=(const SrtIngest&) = delete;

  // Binds every listener (throws std::runtime_error if a port cannot be bound, nothing left
  // running) and starts the threads. Once per object: a second call throws std::logic_error.
  void start();
  // Closes every socket and joins every thread. Idempotent; the sink is not called after it.
  void stop();

  std::size_t size() const;
  const dataplane::InputConfig& input(std::size_t i) const;
  // Thread-safe snapshot; i < size().
  InputStats stats(std::size_t i) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace twincast::control
