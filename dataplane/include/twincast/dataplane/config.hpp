// The appliance configuration as plain values: what the control plane parses from the
// YAML file (control/config) and hands to the data plane. No parsing here, no defaults
// hidden elsewhere: every field's default sits next to it.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "twincast/mpegts/remux.hpp"

namespace twincast::dataplane {

using Ipv4 = std::uint32_t;  // host byte order
using Mac = std::array<std::uint8_t, 6>;

struct EalConfig {
  std::string lcores = "0,1";           // EAL -l: first is the main lcore, the rest run workers
  std::uint32_t memory_mb = 512;        // -m
  bool hugepages = false;               // false: --no-huge --no-shconf (development, tests)
  std::string file_prefix;              // --file-prefix, so several instances can run
  std::vector<std::string> extra_args;  // anything else, passed through
  friend bool operator==(const EalConfig&, const EalConfig&) = default;
};

struct PortConfig {
  std::string name;                     // referenced by inputs and outputs
  std::string device;                   // PCI address, or a vdev: "net_af_packet0,iface=veth0"
  Ipv4 address = 0;
  std::uint8_t prefix_len = 24;
  Ipv4 gateway = 0;                     // next hop for unicast outputs outside address/prefix_len; 0: none
                                        // (those outputs then stay unresolved: dropped as tx_no_route)
  std::uint16_t vlan = 0;               // 0: untagged
  std::optional<Mac> mac;               // default: the device's own
  std::uint32_t rx_descriptors = 1024;
  std::uint32_t tx_descriptors = 1024;
  std::uint32_t mbufs = 8191;           // mempool size for this port
  friend bool operator==(const PortConfig&, const PortConfig&) = default;
};

enum class InputKind : std::uint8_t { kUdp, kRtp, kSrt };
enum class SrtMode : std::uint8_t { kListener, kCaller, kRendezvous };

struct InputConfig {
  std::string name;
  InputKind kind = InputKind::kUdp;
  // UDP/RTP: received on a data-plane port.
  std::string port;                     // PortConfig::name
  Ipv4 address = 0;                     // destination: multicast group or the port's unicast address
  std::uint16_t udp_port = 0;
  Ipv4 source = 0;                      // source-specific multicast when non-zero
  // SRT: received by libsrt on the control side.
  SrtMode srt_mode = SrtMode::kListener;
  std::string srt_address = "0.0.0.0"; // listener: bind address; caller/rendezvous: remote host
  std::uint16_t srt_port = 0;
  std::uint16_t srt_local_port = 0;     // rendezvous: local port (0 = srt_port)
  std::string passphrase;               // empty: no encryption (10..79 characters otherwise)
  std::uint8_t key_length = 16;         // 16, 24 or 32 bytes
  std::uint32_t latency_ms = 120;
  std::string streamid;                 // listener: routes callers with this streamid here
  std::uint64_t max_bitrate_bps = 0;    // alarm ceiling, 0 = none
  friend bool operator==(const InputConfig&, const InputConfig&) = default;
};

enum class OutputKind : std::uint8_t { kUdp, kRtp };
enum class PacingMode : std::uint8_t { kPcr, kCbr, kPassthrough };

struct OutputConfig {
  OutputKind kind = OutputKind::kUdp;
  std::string port;                     // PortConfig::name
  Ipv4 address = 0;                     // multicast group or unicast destination
  std::uint16_t udp_port = 0;
  Ipv4 source = 0;                      // default: the port's address
  std::uint16_t source_port = 0;        // default: udp_port
  std::uint8_t ttl = 16;
  std::uint8_t dscp = 34;               // AF41, common for IPTV video
  std::uint16_t vlan = 0;
  std::uint8_t packets_per_datagram = 7;
  PacingMode pacing = PacingMode::kPcr;
  std::uint64_t cbr_bps = 0;            // kCbr: the constant rate, stuffed with null packets
  friend bool operator==(const OutputConfig&, const OutputConfig&) = default;
};

struct FailoverConfig {
  std::uint32_t timeout_ms = 500;       // an input with no packet for this long is down
  std::uint32_t max_cc_errors_per_s = 0;  // on the channel's program's PIDs; 0: not a reason to switch
  bool require_psi = true;              // PAT or the channel's program's PMT missing (TR 101 290
                                        // PAT/PMT errors), or no such program, is down
  bool revert = true;                   // go back to a better input once it is healthy...
  std::uint32_t revert_holdoff_ms = 5000;  // ...for this long
  friend bool operator==(const FailoverConfig&, const FailoverConfig&) = default;
};

// One rung of a channel's ABR ladder (the OTT side; the data plane sees received
// renditions as channels of their own, see control/README.md).
struct HlsRendition {
  std::string name;                   // [a-z0-9_-]{1,32}, unique in the channel; part of its URLs
  // Received: the same content from an upstream encoder's ladder, inputs in priority order.
  std::vector<InputConfig> inputs;
  // Transcoded from the channel's own output when `inputs` is empty (libavcodec/libx264).
  std::uint16_t height = 0;           // lines, even, 144..2160; the width keeps the aspect ratio
  std::uint32_t video_kbps = 0;       // H.264 video bitrate, 100..50000
  [[nodiscard]] bool transcoded() const { return inputs.empty(); }
  friend bool operator==(const HlsRendition&, const HlsRendition&) = default;
};

// A channel's HLS options (meaningful when ChannelConfig::hls is on).
struct HlsOptions {
  bool signed_urls = false;           // playlists, segments and keys need a valid token (ott.secret_file)
  bool bind_client = false;           // ...that also names the client's address
  bool encrypt = false;               // AES-128 (CBC, whole segments), keys served by the origin
  std::uint32_t key_rotation_segments = 0;  // a new key every N segments; 0: one key per channel start
  std::vector<HlsRendition> renditions;     // besides the channel's own output (the first variant)
  friend bool operator==(const HlsOptions&, const HlsOptions&) = default;
};

struct ChannelConfig {
  std::string id;                       // stable identifier (URLs, metrics)
  std::string name;
  std::string provider;
  std::uint16_t service_id = 0;         // output program_number; 0 = the source's
  std::uint16_t source_service_id = 0;  // service to take from MPTS inputs; 0 = the first
  std::uint16_t lcn = 0;
  std::uint16_t pmt_pid = 0;
  std::vector<mpegts::PidRule> pid_rules;
  std::vector<InputConfig> inputs;      // priority order: the first is the primary
  FailoverConfig failover;
  std::vector<OutputConfig> outputs;
  bool hls = false;
  HlsOptions hls_options;
  std::uint8_t priority = 100;          // higher is more important (QoS shedding)
  friend bool operator==(const ChannelConfig&, const ChannelConfig&) = default;
};

// An MPTS of several channels: each member's remuxed SPTS (after its selector, before its
// own pacer) becomes one service of the multiplex, with the member's service_id, name,
// provider, LCN and pmt_pid; PAT, PMTs, SDT and NIT are regenerated for the multiplex.
// A channel may belong to several multiplexes; it needs no outputs of its own then.
struct MultiplexConfig {
  std::string id;                         // stable identifier (metrics, status)
  std::uint16_t transport_stream_id = 1;
  std::uint16_t original_network_id = 1;
  std::uint16_t network_id = 1;
  std::string network_name = "twincast";
  std::vector<std::string> channels;      // ChannelConfig::id, in program order
  std::vector<OutputConfig> outputs;      // pacing cbr is the usual choice for an MPTS
  friend bool operator==(const MultiplexConfig&, const MultiplexConfig&) = default;
};

// The control plane's listeners (read by control/, not by the data plane).
struct ControlConfig {
  std::string api_listen = "127.0.0.1:8080";      // REST API (host:port, [v6]:port)
  std::string metrics_listen = "127.0.0.1:9100";  // Prometheus /metrics, its own listener
  std::string token_file;                          // bearer token for mutating API calls; empty: refused
  friend bool operator==(const ControlConfig&, const ControlConfig&) = default;
};

// The OTT side (read by control/): the HLS packager and its origin.
struct OttConfig {
  std::string listen = "127.0.0.1:8090";  // HLS origin and the web page (host:port, [v6]:port)
  std::uint32_t segment_seconds = 2;      // target segment duration, 1..10
  std::uint32_t window_segments = 6;      // segments in a live playlist, 3..100
  std::uint32_t memory_mb = 512;          // budget for every channel's segments together
  std::uint32_t dvr_hours = 0;            // time kept per channel for timeshift/catch-up, 0..72 (0: live window only)
  std::string dvr_dir;                    // segments out of the live window go here (absolute after parsing); empty: memory only
  std::uint32_t dvr_disk_mb = 0;          // disk budget of every channel's DVR together (dvr_dir); 0: dvr_hours alone
  std::string static_dir;                 // the web page and hls.js; empty: next to the binary (../web)
  std::string public_url;                 // base of the HLS URLs in lineups (a CDN); empty: http://<listen>
  std::string secret_file;                // HMAC-SHA256 key for signed URLs (absolute path after parsing)
  std::uint32_t transcode_threads = 1;    // CPU budget of all transcoding: encoder threads, 1..64
  std::string transcode_preset = "veryfast";  // libx264 preset (ultrafast..veryslow)
  friend bool operator==(const OttConfig&, const OttConfig&) = default;
};

struct ApplianceConfig {
  ControlConfig control;
  OttConfig ott;
  EalConfig eal;
  std::vector<PortConfig> ports;
  std::vector<ChannelConfig> channels;
  std::vector<MultiplexConfig> multiplexes;
  friend bool operator==(const ApplianceConfig&, const ApplianceConfig&) = default;
};

// What a reload changes. Channels and multiplexes are matched by id; a channel is
// "changed" when its own configuration differs, and is also restarted (listed in
// channels_changed) when a multiplex it belongs to is added, changed or removed, since a
// multiplex is fed by taps set up with its members. A channel whose outputs only moved or
// that was only renamed (updated_in_place()) is "updated": it is not restarted, only its
// outputs are rebuilt and its tables renamed, so its receivers see no pause; a multiplex
// it belongs to is not rebuilt either (it renames the member's service too). A multiplex
// with a member restarted for any reason is rebuilt, restarting its other members in turn.
// Ports, EAL and the control listeners cannot change while running: restart_reasons says
// why a restart is needed instead.
struct ConfigDiff {
  std::vector<std::string> channels_added;
  std::vector<std::string> channels_removed;
  std::vector<std::string> channels_changed;
  std::vector<std::string> channels_updated;  // kept running: updated_in_place()
  std::vector<std::string> channels_unchanged;
  std::vector<std::string> multiplexes_added;
  std::vector<std::string> multiplexes_removed;
  std::vector<std::string> multiplexes_changed;
  std::vector<std::string> restart_reasons;  // non-empty: the difference cannot be applied live
  [[nodiscard]] bool live() const { return restart_reasons.empty(); }
  [[nodiscard]] bool empty() const {
    return channels_added.empty() && channels_removed.empty() && channels_changed.empty() &&
           channels_updated.empty() && multiplexes_added.empty() && multiplexes_removed.empty() && multiplexes_changed.empty() &&
           restart_reasons.empty();
  }
};
[[nodiscard]] ConfigDiff diff_configs(const ApplianceConfig& running, const ApplianceConfig& next);
// `b` is `a` with only its outputs' destinations and its description changed, so the
// channel can go on running: everything else equal, as many outputs, each with the same
// schedule (packets_per_datagram, pacing, cbr_bps) at its place, and an output of both
// (same port, address and UDP port) on the same schedule in both. Address, UDP ports,
// source, port, TTL, DSCP, VLAN, kind (UDP/RTP) and the order of outputs on one schedule
// may differ, and so may the name, provider, LCN (the tables say so) and priority (the OTT
// shedding tier).
[[nodiscard]] bool updated_in_place(const ChannelConfig& a, const ChannelConfig& b);

}  // namespace twincast::dataplane
