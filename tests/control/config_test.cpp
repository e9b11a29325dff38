// The YAML channel map: the example files in config/ parse into the values they say,
// defaults apply, every invalid file in tests/config/invalid/ yields exactly the errors
// its "# expect:" lines name, bad bytes never crash, and `twincastd --check` reports both.
#include "twincast/control/config.hpp"
#include "twincast/control/http_server.hpp"
#include "twincast/control/srt_ingest.hpp"
#include "twincast/mpegts/remux.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "tests_common.hpp"

namespace fs = std::filesystem;
using twincast::control::ConfigError;
using twincast::control::ConfigResult;
using twincast::control::format_error;
using twincast::control::format_errors;
using twincast::control::is_host_name;
using twincast::control::load_config;
using twincast::control::parse_config;
using namespace twincast::dataplane;

namespace {

fs::path source_dir() {
  if (const char* d = std::getenv("TWINCAST_SOURCE_DIR")) return d;
  return fs::path(__FILE__).parent_path().parent_path().parent_path();
}

std::string slurp(const fs::path& p) {
  std::ifstream is(p, std::ios::binary);
  std::ostringstream os;
  os << is.rdbuf();
  return os.str();
}

constexpr Ipv4 ip(unsigned a, unsigned b, unsigned c, unsigned d) { return (a << 24) | (b << 16) | (c << 8) | d; }

std::vector<std::string> formatted(const ConfigResult& r) {
  std::vector<std::string> out;
  for (const auto& e : r.errors) out.push_back(format_error(e, ""));
  return out;
}

// A small valid configuration that tests extend.
constexpr const char* kMinimal = R"(ports:
  - { name: core, device: net_tap0, address: 10.0.0.2/24 }
channels:
  - id: a
    inputs:
      - udp: { port: core, udp_port: 5000 }
    outputs:
      - udp: { port: core, group: 239.10.0.1, udp_port: 5000 }
)";

TEST(Config, DemoParsesIntoItsValues) {
  const auto r = load_config((source_dir() / "config/demo.yaml").string());
  ASSERT_TRUE(r.ok()) << format_errors(r.errors, "demo.yaml");
  const ApplianceConfig& c = *r.config;
  EXPECT_EQ(c.eal.lcores, "0,1");
  EXPECT_EQ(c.eal.memory_mb, 512U);
  EXPECT_FALSE(c.eal.hugepages);
  EXPECT_EQ(c.eal.file_prefix, "twincast-demo");
  ASSERT_EQ(c.ports.size(), 1U);
  EXPECT_EQ(c.ports[0].name, "core");
  EXPECT_EQ(c.ports[0].device, "net_af_packet0,iface=tcdemo1");
  EXPECT_EQ(c.ports[0].address, ip(10, 0, 0, 2));
  EXPECT_EQ(c.ports[0].prefix_len, 24);
  ASSERT_EQ(c.channels.size(), 2U);

  const ChannelConfig& news = c.channels[0];
  EXPECT_EQ(news.id, "news");
  EXPECT_EQ(news.name, "News HD");
  EXPECT_EQ(news.provider, "Demo Broadcasting");
  EXPECT_EQ(news.service_id, 101);
  EXPECT_EQ(news.lcn, 1);
  EXPECT_TRUE(news.hls);
  ASSERT_EQ(news.inputs.size(), 1U);
  const InputConfig& srt = news.inputs[0];
  EXPECT_EQ(srt.kind, InputKind::kSrt);
  EXPECT_EQ(srt.name, "contribution");
  EXPECT_EQ(srt.srt_mode, SrtMode::kListener);
  EXPECT_EQ(srt.srt_address, "0.0.0.0");
  EXPECT_EQ(srt.srt_port, 9000);
  EXPECT_EQ(srt.passphrase, "twincast-demo-passphrase");  // read from keys/demo.key, trimmed
  EXPECT_EQ(srt.key_length, 16);
  EXPECT_EQ(srt.latency_ms, 200U);
  EXPECT_EQ(srt.streamid, "news");
  ASSERT_EQ(news.outputs.size(), 1U);
  EXPECT_EQ(news.outputs[0].address, ip(239, 10, 0, 1));
  EXPECT_EQ(news.outputs[0].udp_port, 5001);

  const ChannelConfig& sport = c.channels[1];
  ASSERT_EQ(sport.inputs.size(), 1U);
  EXPECT_EQ(sport.inputs[0].kind, InputKind::kUdp);
  EXPECT_EQ(sport.inputs[0].port, "core");
  EXPECT_EQ(sport.inputs[0].address, ip(239, 1, 1, 2));
  EXPECT_EQ(sport.inputs[0].source, ip(10, 0, 0, 9));
  ASSERT_EQ(sport.pid_rules.size(), 1U);
  EXPECT_EQ(sport.pid_rules[0].from, 0x102);
  EXPECT_TRUE(sport.pid_rules[0].drop);
  EXPECT_TRUE(sport.hls);
  EXPECT_TRUE(sport.hls_options.signed_urls);
  EXPECT_TRUE(sport.hls_options.encrypt);
  EXPECT_EQ(sport.hls_options.key_rotation_segments, 15U);
  ASSERT_EQ(news.hls_options.renditions.size(), 1U);
  EXPECT_EQ(news.hls_options.renditions[0].name, "360p");
  EXPECT_TRUE(news.hls_options.renditions[0].transcoded());
  EXPECT_EQ(news.hls_options.renditions[0].height, 360U);
  EXPECT_EQ(news.hls_options.renditions[0].video_kbps, 700U);
  EXPECT_EQ(c.ott.transcode_threads, 1U);
  EXPECT_NE(c.ott.secret_file.find("demo-hls.secret"), std::string::npos);
}

TEST(Config, RedundantParsesIntoItsValues) {
  const auto r = load_config((source_dir() / "config/redundant.yaml").string());
  ASSERT_TRUE(r.ok()) << format_errors(r.errors, "redundant.yaml");
  const ApplianceConfig& c = *r.config;
  EXPECT_TRUE(c.eal.hugepages);
  ASSERT_EQ(c.ports.size(), 2U);
  EXPECT_EQ(c.ports[1].vlan, 210);
  ASSERT_TRUE(c.ports[1].mac.has_value());
  EXPECT_EQ(*c.ports[1].mac, (Mac{0x02, 0x00, 0x5e, 0x10, 0x00, 0x01}));
  ASSERT_EQ(c.channels.size(), 1U);
  const ChannelConfig& ch = c.channels[0];
  EXPECT_EQ(ch.pmt_pid, 0x1000);
  EXPECT_EQ(ch.source_service_id, 3);
  ASSERT_EQ(ch.inputs.size(), 2U);
  EXPECT_EQ(ch.inputs[0].name, "primary");
  EXPECT_EQ(ch.inputs[0].kind, InputKind::kUdp);
  EXPECT_EQ(ch.inputs[0].max_bitrate_bps, 12'000'000U);
  EXPECT_EQ(ch.inputs[1].name, "backup");
  EXPECT_EQ(ch.inputs[1].kind, InputKind::kSrt);
  EXPECT_EQ(ch.inputs[1].srt_mode, SrtMode::kCaller);
  EXPECT_EQ(ch.inputs[1].srt_address, "srt-gw.site2.example.net");
  EXPECT_EQ(ch.inputs[1].key_length, 32);
  EXPECT_EQ(ch.failover.timeout_ms, 300U);
  EXPECT_EQ(ch.failover.max_cc_errors_per_s, 20U);
  EXPECT_EQ(ch.failover.revert_holdoff_ms, 10'000U);
  ASSERT_EQ(ch.pid_rules.size(), 3U);
  EXPECT_EQ(ch.pid_rules[0].to, 0x200);
  EXPECT_EQ(ch.pid_rules[2].from, 0x1FFA);
  ASSERT_EQ(ch.outputs.size(), 2U);
  EXPECT_EQ(ch.outputs[0].pacing, PacingMode::kCbr);
  EXPECT_EQ(ch.outputs[0].cbr_bps, 10'000'000U);
  EXPECT_EQ(ch.outputs[0].ttl, 8);
  EXPECT_EQ(ch.outputs[1].kind, OutputKind::kRtp);
  EXPECT_EQ(ch.outputs[1].address, ip(172, 16, 1, 50));
  EXPECT_EQ(ch.priority, 200);
}

TEST(Config, LineupHasTwentyDistinctChannels) {
  const auto r = load_config((source_dir() / "config/lineup-20.yaml").string());
  ASSERT_TRUE(r.ok()) << format_errors(r.errors, "lineup-20.yaml");
  ASSERT_EQ(r.config->channels.size(), 20U);
  for (std::size_t i = 0; i < 20; ++i) {
    const ChannelConfig& ch = r.config->channels[i];
    EXPECT_EQ(ch.lcn, i + 1);
    EXPECT_EQ(ch.service_id, 1001 + i);
    ASSERT_EQ(ch.outputs.size(), 1U);
    EXPECT_EQ(ch.outputs[0].address, ip(239, 200, 0, static_cast<unsigned>(i + 1)));
  }
}

TEST(Config, LineupMultiplexesFiveChannelsIntoOneCbrMpts) {
  const auto r = load_config((source_dir() / "config/lineup-20.yaml").string());
  ASSERT_TRUE(r.ok()) << format_errors(r.errors, "lineup-20.yaml");
  ASSERT_EQ(r.config->multiplexes.size(), 1U);
  const MultiplexConfig& m = r.config->multiplexes[0];
  EXPECT_EQ(m.id, "cable-mux-1");
  EXPECT_EQ(m.transport_stream_id, 101);
  EXPECT_EQ(m.original_network_id, 0x2000);
  EXPECT_EQ(m.network_id, 0x3001);
  EXPECT_EQ(m.network_name, "Example Cable");
  EXPECT_EQ(m.channels, (std::vector<std::string>{"news-1", "news-2", "business", "sport-1", "sport-2"}));
  ASSERT_EQ(m.outputs.size(), 1U);
  EXPECT_EQ(m.outputs[0].pacing, PacingMode::kCbr);
  EXPECT_EQ(m.outputs[0].cbr_bps, 38'000'000U);
  EXPECT_EQ(m.outputs[0].address, ip(239, 210, 0, 1));
  EXPECT_EQ(m.outputs[0].ttl, 8);
}

// A channel in a multiplex needs no output of its own, may be in several multiplexes,
// and the multiplex's defaults apply to what is absent.
TEST(Config, MultiplexMembersNeedNoOutputsAndMayBeShared) {
  const auto r = parse_config(R"(ports:
  - { name: core, device: net_tap0, address: 10.0.0.2/24 }
channels:
  - id: a
    service_id: 10
    inputs: [ { udp: { port: core, group: 239.1.1.1, udp_port: 5000 } } ]
  - id: b
    service_id: 11
    lcn: 7
    inputs: [ { udp: { port: core, group: 239.1.1.2, udp_port: 5000 } } ]
multiplexes:
  - id: east
    channels: [b, a]
    outputs: [ { udp: { port: core, group: 239.20.0.1, udp_port: 5000, pacing: cbr, cbr_bps: 8000000 } } ]
  - id: west
    channels: [a]
    outputs: [ { rtp: { port: core, group: 239.20.0.2, udp_port: 5004 } } ]
)");
  ASSERT_TRUE(r.ok()) << format_errors(r.errors, "");
  ASSERT_EQ(r.config->multiplexes.size(), 2U);
  const MultiplexConfig defaults;
  const MultiplexConfig& east = r.config->multiplexes[0];
  EXPECT_EQ(east.channels, (std::vector<std::string>{"b", "a"}));
  EXPECT_EQ(east.transport_stream_id, defaults.transport_stream_id);
  EXPECT_EQ(east.network_name, defaults.network_name);
  EXPECT_EQ(east.outputs[0].cbr_bps, 8'000'000U);
  const MultiplexConfig& west = r.config->multiplexes[1];
  EXPECT_EQ(west.outputs[0].kind, OutputKind::kRtp);
  EXPECT_EQ(west.outputs[0].pacing, PacingMode::kPcr);
  EXPECT_TRUE(r.config->channels[0].outputs.empty());

  // Without the multiplexes, both channels go nowhere.
  const std::string text = R"(ports:
  - { name: core, device: net_tap0, address: 10.0.0.2/24 }
channels:
  - id: a
    service_id: 10
    inputs: [ { udp: { port: core, group: 239.1.1.1, udp_port: 5000 } } ]
multiplexes: []
)";
  const auto none = parse_config(text);
  ASSERT_EQ(none.errors.size(), 1U) << format_errors(none.errors, "");
  EXPECT_EQ(none.errors[0].path, "channels[0].outputs");
}

// The multiplex rules that span objects all report at once, in file order.
TEST(Config, MultiplexErrorsReportTogether) {
  const auto r = parse_config(R"(ports:
  - { name: core, device: net_tap0, address: 10.0.0.2/24 }
channels:
  - id: a
    inputs: [ { udp: { port: core, group: 239.1.1.1, udp_port: 5000 } } ]
    outputs: [ { udp: { port: core, group: 239.10.0.1, udp_port: 5000 } } ]
multiplexes:
  - id: m
    transport_stream_id: 70000
    channels: [a, zz, a]
    outputs: [ { udp: { port: nowhere, group: 239.10.0.1, udp_port: 5000 } } ]
  - id: m
    channels: a
    outputs: []
)");
  const std::vector<std::string> expected = {
      "9:26: multiplexes[0].transport_stream_id: 70000 is out of range (0..65535)",
      "10:16: multiplexes[0].channels[0]: channel \"a\" needs a service_id to be in a multiplex (channels[0] keeps "
      "its source's, which may collide)",
      "10:19: multiplexes[0].channels[1]: channel \"zz\" is not defined in channels",
      "10:23: multiplexes[0].channels[2]: channel \"a\" is already in this multiplex (channels[0])",
      "11:31: multiplexes[0].outputs[0].udp.port: port \"nowhere\" is not defined in ports (defined: core)",
      "11:47: multiplexes[0].outputs[0].udp.group: 239.10.0.1:5000 is already the destination of "
      "channels[0].outputs[0]",
      "12:9: multiplexes[1].id: duplicate multiplex id \"m\" (also multiplexes[0])",
      "13:15: multiplexes[1].channels: expected a list, got \"a\"",
      "14:14: multiplexes[1].outputs: a multiplex needs at least one output",
  };
  EXPECT_EQ(formatted(r), expected);
}

TEST(Config, DefaultsApplyToWhatIsAbsent) {
  const auto r = parse_config(kMinimal);
  ASSERT_TRUE(r.ok()) << format_errors(r.errors, "");
  const ApplianceConfig& c = *r.config;
  const EalConfig eal_defaults;
  EXPECT_EQ(c.eal.lcores, eal_defaults.lcores);
  EXPECT_EQ(c.eal.memory_mb, eal_defaults.memory_mb);
  EXPECT_EQ(c.eal.hugepages, eal_defaults.hugepages);
  const PortConfig port_defaults;
  EXPECT_EQ(c.ports[0].vlan, port_defaults.vlan);
  EXPECT_FALSE(c.ports[0].mac.has_value());
  EXPECT_EQ(c.ports[0].mbufs, port_defaults.mbufs);
  const ChannelConfig& ch = c.channels[0];
  EXPECT_EQ(ch.service_id, 0);
  EXPECT_EQ(ch.priority, 100);
  EXPECT_FALSE(ch.hls);
  const FailoverConfig fo_defaults;
  EXPECT_EQ(ch.failover.timeout_ms, fo_defaults.timeout_ms);
  EXPECT_EQ(ch.failover.require_psi, fo_defaults.require_psi);
  EXPECT_EQ(ch.failover.revert_holdoff_ms, fo_defaults.revert_holdoff_ms);
  EXPECT_EQ(ch.inputs[0].name, "input1");
  EXPECT_EQ(ch.inputs[0].address, ip(10, 0, 0, 2));  // no group: unicast to the port's address
  const OutputConfig out_defaults;
  EXPECT_EQ(ch.outputs[0].ttl, out_defaults.ttl);
  EXPECT_EQ(ch.outputs[0].dscp, out_defaults.dscp);
  EXPECT_EQ(ch.outputs[0].packets_per_datagram, out_defaults.packets_per_datagram);
  EXPECT_EQ(ch.outputs[0].pacing, out_defaults.pacing);

  // Setting one failover field leaves the others at their defaults.
  std::string text = kMinimal;
  text += "    failover: { timeout_ms: 250 }\n";
  const auto r2 = parse_config(text);
  ASSERT_TRUE(r2.ok()) << format_errors(r2.errors, "");
  EXPECT_EQ(r2.config->channels[0].failover.timeout_ms, 250U);
  EXPECT_EQ(r2.config->channels[0].failover.revert_holdoff_ms, fo_defaults.revert_holdoff_ms);
  EXPECT_EQ(r2.config->channels[0].failover.revert, fo_defaults.revert);
}

TEST(Config, PidsAcceptHexAndDecimal) {
  std::string text = kMinimal;
  text += "    pmt_pid: 0X20\n    pids:\n      - { from: 0x1ffe, to: 256 }\n      - { from: 0x10, drop: yes }\n";
  const auto r = parse_config(text);
  ASSERT_TRUE(r.ok()) << format_errors(r.errors, "");
  const ChannelConfig& ch = r.config->channels[0];
  EXPECT_EQ(ch.pmt_pid, 0x20);
  ASSERT_EQ(ch.pid_rules.size(), 2U);
  EXPECT_EQ(ch.pid_rules[0].from, 0x1FFE);
  EXPECT_EQ(ch.pid_rules[0].to, 256);
  EXPECT_FALSE(ch.pid_rules[0].drop);
  EXPECT_EQ(ch.pid_rules[1].from, 0x10);
  EXPECT_TRUE(ch.pid_rules[1].drop);
}

TEST(Config, ReportsEveryErrorAtOnceInFileOrder) {
  const auto r = parse_config(R"(dataplane: { memory_mb: 10, hugepages: perhaps }
ports:
  - { name: core, device: net_tap0, address: 10.0.0.2/40 }
channels:
  - id: a
    lcn: 0
    inputs:
      - udp: { port: nowhere, group: 239.1.1.1, udp_port: 5000 }
    outputs:
      - udp: { port: core, group: 10.0.0.1, udp_port: 5000, ttl: 300, dscp: 99 }
  - id: a
    colour: red
    inputs: []
    hls: true
)");
  EXPECT_FALSE(r.ok());
  const std::vector<std::string> expected = {
      "1:25: dataplane.memory_mb: 10 is out of range (64..1048576)",
      "1:40: dataplane.hugepages: expected true or false, got \"perhaps\"",
      "3:46: ports[0].address: prefix length in \"10.0.0.2/40\" is out of range (1..32)",
      "6:10: channels[0].lcn: 0 is out of range (1..1023)",
      "8:22: channels[0].inputs[0].udp.port: port \"nowhere\" is not defined in ports (defined: core)",
      "10:35: channels[0].outputs[0].udp.group: 10.0.0.1 is not a multicast group (224.0.0.0/4)",
      "10:66: channels[0].outputs[0].udp.ttl: 300 is out of range (1..255)",
      "10:77: channels[0].outputs[0].udp.dscp: 99 is out of range (0..63)",
      "11:9: channels[1].id: duplicate channel id \"a\" (also channels[0])",
      "12:5: channels[1].colour: unknown key \"colour\" (expected one of: id name provider service_id "
      "source_service_id lcn pmt_pid pids inputs failover outputs hls priority)",
      "13:13: channels[1].inputs: a channel needs at least one input",
  };
  EXPECT_EQ(formatted(r), expected);
}

// A key written with nothing after it ("udp_port:") is where its error is: yaml-cpp marks
// the empty value at the next token, a line further down (past the end of the file for
// the last key), which is not where the operator has to look.
TEST(Config, AnEmptyValueIsReportedAtItsKey) {
  const auto r = parse_config(R"(ports:
  - { name: core, device: net_tap0, address: 10.0.0.2/24 }
channels:
  - id: a
    inputs:
      - udp:
          port: core
          udp_port:
    failover:
    outputs:
      - rtp:
    name:)");
  const std::vector<std::string> expected = {
      "8:11: channels[0].inputs[0].udp.udp_port: expected an integer, got nothing",
      "9:5: channels[0].failover: expected a mapping, got nothing",
      "11:9: channels[0].outputs[0].rtp: expected a mapping, got nothing",
      "12:5: channels[0].name: expected a string, got nothing",
  };
  EXPECT_EQ(formatted(r), expected);
}

TEST(Config, SecondYamlDocumentIsAnError) {
  const auto r = parse_config(std::string(kMinimal) + "---\nchannels: []\n");
  ASSERT_EQ(r.errors.size(), 1U) << format_errors(r.errors, "");
  EXPECT_EQ(r.errors[0].line, 10);  // "channels: []" after the "---" on line 9
}

// The annotated schema in config/README.md is a real configuration: its only errors are
// the token and passphrase files, which exist on an appliance and not here.
TEST(Config, ReadmeSchemaExampleValidates) {
  const std::string readme = slurp(source_dir() / "config/README.md");
  const auto begin = readme.find("```yaml\n");
  ASSERT_NE(begin, std::string::npos);
  const auto end = readme.find("```", begin + 8);
  ASSERT_NE(end, std::string::npos);
  const auto r = parse_config(std::string_view(readme).substr(begin + 8, end - begin - 8));
  ASSERT_EQ(r.errors.size(), 2U) << format_errors(r.errors, "README.md");
  EXPECT_EQ(r.errors[0].path, "control.token_file");
  EXPECT_NE(r.errors[0].message.find("cannot read /etc/twincast/api.token"), std::string::npos);
  EXPECT_EQ(r.errors[1].path, "channels[0].inputs[1].srt.passphrase_file");
  EXPECT_NE(r.errors[1].message.find("cannot read /etc/twincast/news.key"), std::string::npos);
}

TEST(Config, MptsInputMayFeedChannelsTakingDifferentServices) {
  const auto two = [](const std::string& sid_a, const std::string& sid_b) {
    return "ports:\n"
           "  - { name: core, device: net_tap0, address: 10.0.0.2/24 }\n"
           "channels:\n"
           "  - id: a\n"
           "    source_service_id: " + sid_a + "\n"
           "    inputs: [ { udp: { port: core, group: 239.1.1.1, udp_port: 5000 } } ]\n"
           "    outputs: [ { udp: { port: core, group: 239.10.0.1, udp_port: 5000 } } ]\n"
           "  - id: b\n"
           "    source_service_id: " + sid_b + "\n"
           "    inputs: [ { udp: { port: core, group: 239.1.1.1, udp_port: 5000 } } ]\n"
           "    outputs: [ { udp: { port: core, group: 239.10.0.2, udp_port: 5000 } } ]\n";
  };
  const auto distinct = parse_config(two("1", "2"));
  EXPECT_TRUE(distinct.ok()) << format_errors(distinct.errors, "");
  const auto r = parse_config(two("1", "1"));
  ASSERT_EQ(r.errors.size(), 1U) << format_errors(r.errors, "");
  EXPECT_EQ(r.errors[0].path, "channels[1].inputs[0].udp.udp_port");
  EXPECT_EQ(r.errors[0].line, 10);
}

TEST(Config, SrtListenersMayShareAPortWithDistinctStreamids) {
  const auto two = [](const std::string& id_a, const std::string& id_b) {
    return "channels:\n"
           "  - id: a\n"
           "    inputs: [ { srt: { port: 9000" + id_a + " } } ]\n"
           "    hls: true\n"
           "  - id: b\n"
           "    inputs: [ { srt: { port: 9000" + id_b + " } } ]\n"
           "    hls: true\n";
  };
  const auto distinct = parse_config(two(", streamid: one", ", streamid: two"));
  EXPECT_TRUE(distinct.ok()) << format_errors(distinct.errors, "");
  for (const auto& [a, b] : {std::pair<std::string, std::string>{", streamid: one", ", streamid: one"},
                             {"", ", streamid: two"},
                             {"", ""}}) {
    const auto r = parse_config(two(a, b));
    ASSERT_EQ(r.errors.size(), 1U) << format_errors(r.errors, "");
    EXPECT_EQ(r.errors[0].path, "channels[1].inputs[0].srt.port");
    EXPECT_EQ(r.errors[0].line, 6);
  }
}

TEST(Config, FormatsErrorsLikeACompiler) {
  const ConfigError e{"channels[2].outputs[0].ttl", 12, 7, "300 is out of range (1..255)"};
  EXPECT_EQ(format_error(e, "channels.yaml"),
            "channels.yaml:12:7: channels[2].outputs[0].ttl: 300 is out of range (1..255)");
  EXPECT_EQ(format_error(e, ""), "12:7: channels[2].outputs[0].ttl: 300 is out of range (1..255)");
  const ConfigError whole{"", 3, 1, "YAML syntax error: x"};
  EXPECT_EQ(format_errors({whole, e}, "f.yaml"),
            "f.yaml:3:1: YAML syntax error: x\n"
            "f.yaml:12:7: channels[2].outputs[0].ttl: 300 is out of range (1..255)\n");
}

TEST(Config, UnreadableFileIsAConfigError) {
  const auto r = load_config("/nonexistent/twincast.yaml");
  ASSERT_FALSE(r.ok());
  ASSERT_EQ(r.errors.size(), 1U);
  EXPECT_EQ(r.errors[0].line, 0);
  EXPECT_EQ(format_errors(r.errors, "/nonexistent/twincast.yaml"),
            "cannot read /nonexistent/twincast.yaml: No such file or directory\n");
  const auto dir = load_config(source_dir().string());
  ASSERT_EQ(dir.errors.size(), 1U);
  EXPECT_NE(dir.errors[0].message.find("Is a directory"), std::string::npos) << dir.errors[0].message;
}

// Every tests/config/invalid/*.yaml starts with one or more "# expect: LINE:COL: PATH: MESSAGE"
// lines; the errors reported must be exactly those, in that order.
TEST(Config, InvalidFilesReportExactlyTheExpectedErrors) {
  const fs::path dir = source_dir() / "tests/config/invalid";
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(dir))
    if (entry.path().extension() == ".yaml") files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  EXPECT_GE(files.size(), 30U);
  for (const auto& file : files) {
    SCOPED_TRACE(file.filename().string());
    std::vector<std::string> expected;
    std::istringstream lines(slurp(file));
    const std::string prefix = "# expect: ";
    for (std::string line; std::getline(lines, line) && line.rfind(prefix, 0) == 0;)
      expected.push_back(line.substr(prefix.size()));
    ASSERT_FALSE(expected.empty()) << "no # expect: line";
    const auto r = load_config(file.string());
    EXPECT_FALSE(r.ok());
    EXPECT_EQ(formatted(r), expected);
  }
}

// Bad bytes never crash: every truncation of the demo, random bytes, random edits.
TEST(Config, SurvivesTruncationAndGarbage) {
  const std::string demo = slurp(source_dir() / "config/demo.yaml");
  ASSERT_FALSE(demo.empty());
  const std::string demo_name = (source_dir() / "config/demo.yaml").string();
  std::size_t n_ok = 0;
  for (std::size_t n = 0; n <= demo.size(); n += 7) {
    const auto r = parse_config(std::string_view(demo).substr(0, n), demo_name);
    EXPECT_NE(r.ok(), !r.errors.empty());
    if (r.ok()) ++n_ok;
  }
  EXPECT_LT(n_ok, demo.size() / 7);  // most truncations lose a required key
  std::mt19937 rng(1234);
  for (int i = 0; i < 300; ++i) {
    std::string bytes(rng() % 300, '\0');
    for (auto& b : bytes) b = static_cast<char>(rng());
    const auto r = parse_config(bytes);
    EXPECT_NE(r.ok(), !r.errors.empty());
  }
  const std::string alphabet = "{}[]:,-#&*!|>'\"% \n\t0x7aZ";
  for (int i = 0; i < 300; ++i) {
    std::string text = demo;
    for (int k = 0; k < 5; ++k) text[rng() % text.size()] = alphabet[rng() % alphabet.size()];
    const auto r = parse_config(text, demo_name);
    EXPECT_NE(r.ok(), !r.errors.empty());
    for (const auto& e : r.errors) EXPECT_FALSE(e.message.empty());
  }
}

TEST(Config, TwincastdCheck) {
  const std::string twincastd = twincast::test::shell_quote(twincast::test::tool("twincastd").string());
  const std::string demo = (source_dir() / "config/demo.yaml").string();
  auto r = twincast::test::run(twincastd + " --check " + twincast::test::shell_quote(demo));
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(r.out, demo + ": OK (2 channels, 2 on HLS)\n");

  const std::string bad = (source_dir() / "tests/config/invalid/multiple_errors.yaml").string();
  r = twincast::test::run("(" + twincastd + " --check " + twincast::test::shell_quote(bad) + " 2>/dev/null)");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.out, "");  // errors go to stderr
  r = twincast::test::run(twincastd + " --check " + twincast::test::shell_quote(bad));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.out, bad + ":8:10: channels[0].lcn: 0 is out of range (1..1023)\n" + bad +
                       ":12:57: channels[0].outputs[0].udp.udp_port: 70000 is out of range (1..65535)\n" + bad +
                       ":12:69: channels[0].outputs[0].udp.ttl: 0 is out of range (1..255)\n");

  r = twincast::test::run(twincastd + " --check /nonexistent.yaml");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.out, "cannot read /nonexistent.yaml: No such file or directory\n");
  r = twincast::test::run(twincastd + " --version");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out.rfind("twincastd ", 0), 0U) << r.out;
  r = twincast::test::run(twincastd + " --check");
  EXPECT_EQ(r.exit_code, 2);
}


// A caller's address is a host name or an IPv4 address. getaddrinfo reads "0", "127.1" and
// "0x7f.1" as numbers (0.0.0.0, 127.0.0.1), so they must meet the rules for addresses, not
// pass as names: "0" was accepted while "0.0.0.0" was refused.
TEST(Config, CallerAddressIsANameOrFourDecimalParts) {
  EXPECT_TRUE(is_host_name("encoder-1.example.org"));
  EXPECT_TRUE(is_host_name("example.org."));
  EXPECT_TRUE(is_host_name("localhost"));
  EXPECT_TRUE(is_host_name("192.0.2.7"));
  EXPECT_TRUE(is_host_name("1e100.net"));
  for (const char* bad : {"0", "127.1", "0x7f.1", "0x7f000001", "1.2.3.4.5", "192.0.2.7.", "a..b", ".a", "-a.org",
                          "a-.org", "a_b.org", ""})
    EXPECT_FALSE(is_host_name(bad)) << bad;
  const auto caller = [](const std::string& address) {
    return parse_config("channels:\n"
                        "  - id: a\n"
                        "    inputs: [ { srt: { mode: caller, address: '" + address + "', port: 9000 } } ]\n"
                        "    hls: true\n");
  };
  EXPECT_TRUE(caller("encoder.example.org").ok());
  for (const char* bad : {"0", "127.1"}) {
    const auto r = caller(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_NE(format_errors(r.errors, "").find("is not a host name or IPv4 address"), std::string::npos)
        << format_errors(r.errors, "");
  }
  // Four decimal parts that do not name a remote host are refused here too, not only when
  // the SRT ingest starts.
  EXPECT_TRUE(caller("192.0.2.7").ok());
  for (const char* bad : {"0.0.0.0", "255.255.255.255", "239.1.1.1"}) {
    const auto r = caller(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_NE(format_errors(r.errors, "").find("is not a unicast address"), std::string::npos)
        << format_errors(r.errors, "");
  }
}


// ---- review: what --check accepts must run ------------------------------------------

std::string errors_of(const ConfigResult& r) { return format_errors(r.errors, ""); }

// PIDs 0x10..0x1F are DVB SI (NIT 0x10, SDT 0x11, EIT 0x12, ...): the remuxer refuses them
// as a PMT PID or a rule target ("is reserved"), so twincastd would not start (or a reload
// would be refused with an error naming no line). The config must say so, with the line.
TEST(Config, PmtPidAndPidRuleTargetsStayOutOfTheDvbSiRange) {
  const auto with = [](const std::string& extra) {
    return std::string("ports:\n"
                       "  - { name: core, device: net_tap0, address: 10.0.0.2/24 }\n"
                       "channels:\n"
                       "  - id: a\n") +
           extra +
           "    inputs: [ { udp: { port: core, udp_port: 5000 } } ]\n"
           "    outputs: [ { udp: { port: core, group: 239.10.0.1, udp_port: 5000 } } ]\n";
  };
  EXPECT_TRUE(parse_config(with("    pmt_pid: 0x20\n    pids: [ { from: 0x100, to: 0x21 } ]\n")).ok());
  const auto pmt = parse_config(with("    pmt_pid: 0x11\n"));
  ASSERT_EQ(pmt.errors.size(), 1U) << errors_of(pmt);
  EXPECT_EQ(pmt.errors[0].path, "channels[0].pmt_pid");
  EXPECT_EQ(pmt.errors[0].line, 5);
  const auto rule = parse_config(with("    pids: [ { from: 0x100, to: 0x12 } ]\n"));
  ASSERT_EQ(rule.errors.size(), 1U) << errors_of(rule);
  EXPECT_EQ(rule.errors[0].path, "channels[0].pids[0].to");
  EXPECT_EQ(rule.errors[0].line, 5);
}

// The data plane feeds one received flow to several channels only when all take it as the
// same kind: a UDP input and an RTP input of one (port, group, udp_port, source) make it
// throw "already an input of another kind" when it builds its plan.
TEST(Config, OneFlowIsNotBothAUdpAndAnRtpInput) {
  const auto r = parse_config(
      "ports:\n"
      "  - { name: core, device: net_tap0, address: 10.0.0.2/24 }\n"
      "channels:\n"
      "  - id: a\n"
      "    source_service_id: 1\n"
      "    inputs: [ { udp: { port: core, group: 239.1.1.1, udp_port: 5000 } } ]\n"
      "    outputs: [ { udp: { port: core, group: 239.10.0.1, udp_port: 5000 } } ]\n"
      "  - id: b\n"
      "    source_service_id: 2\n"
      "    inputs: [ { rtp: { port: core, group: 239.1.1.1, udp_port: 5000 } } ]\n"
      "    outputs: [ { udp: { port: core, group: 239.10.0.2, udp_port: 5000 } } ]\n");
  ASSERT_EQ(r.errors.size(), 1U) << errors_of(r);
  EXPECT_EQ(r.errors[0].path, "channels[1].inputs[0].rtp.udp_port");
  EXPECT_EQ(r.errors[0].line, 10);
}

// The classifier gives a datagram from S to the (group, port, S) input when there is one,
// else to the any-source (group, port) input: an any-source input of another channel never
// sees S's datagrams, silently (its MPTS split or its own service gets nothing from S).
TEST(Config, AnySourceAndSourceSpecificInputsOfOneGroupAreNotSplitAcrossChannels) {
  const auto two = [](const std::string& source_b) {
    return "ports:\n"
           "  - { name: core, device: net_tap0, address: 10.0.0.2/24 }\n"
           "channels:\n"
           "  - id: a\n"
           "    source_service_id: 1\n"
           "    inputs: [ { udp: { port: core, group: 239.1.1.1, udp_port: 5000, source: 10.0.0.9 } } ]\n"
           "    outputs: [ { udp: { port: core, group: 239.10.0.1, udp_port: 5000 } } ]\n"
           "  - id: b\n"
           "    source_service_id: 2\n"
           "    inputs: [ { udp: { port: core, group: 239.1.1.1, udp_port: 5000" + source_b + " } } ]\n"
           "    outputs: [ { udp: { port: core, group: 239.10.0.2, udp_port: 5000 } } ]\n";
  };
  EXPECT_TRUE(parse_config(two(", source: 10.0.0.9")).ok());  // one flow, shared: fine
  EXPECT_TRUE(parse_config(two(", source: 10.0.0.10")).ok());  // two sources: two flows
  const auto r = parse_config(two(""));
  ASSERT_EQ(r.errors.size(), 1U) << errors_of(r);
  EXPECT_EQ(r.errors[0].path, "channels[1].inputs[0].udp.group");
  EXPECT_EQ(r.errors[0].line, 10);
}

// The SRT ingest binds one socket per listen port: listeners sharing a port must share a
// bind address, or SrtIngest refuses the whole set ("must share one bind address") when
// twincastd starts, or when a reload has already applied the new map.
TEST(Config, SrtListenersSharingAPortShareABindAddress) {
  const auto r = parse_config(
      "channels:\n"
      "  - id: a\n"
      "    inputs: [ { srt: { port: 9000, streamid: one } } ]\n"
      "    hls: true\n"
      "  - id: b\n"
      "    inputs: [ { srt: { port: 9000, address: 127.0.0.1, streamid: two } } ]\n"
      "    hls: true\n");
  ASSERT_EQ(r.errors.size(), 1U) << errors_of(r);
  EXPECT_EQ(r.errors[0].path, "channels[1].inputs[0].srt.address");
  EXPECT_EQ(r.errors[0].line, 6);
}

// A rendezvous input binds its local port (local_port, default port): on a listener's
// port the SRT ingest refuses the whole set ("is already a listener port").
TEST(Config, RendezvousLocalPortIsNotAListenerPort) {
  const auto with = [](const std::string& rendezvous) {
    return "channels:\n"
           "  - id: a\n"
           "    inputs: [ { srt: { port: 9000 } } ]\n"
           "    hls: true\n"
           "  - id: b\n"
           "    inputs: [ { srt: { mode: rendezvous, address: 192.0.2.7, " + rendezvous + " } } ]\n"
           "    hls: true\n";
  };
  EXPECT_TRUE(parse_config(with("port: 9001")).ok());
  for (const char* bad : {"port: 9000", "port: 9001, local_port: 9000"}) {
    const auto r = parse_config(with(bad));
    ASSERT_EQ(r.errors.size(), 1U) << bad << "\n" << errors_of(r);
    EXPECT_EQ(r.errors[0].line, 6) << bad;
    EXPECT_NE(r.errors[0].message.find("listener"), std::string::npos) << r.errors[0].message;
  }
}

// metrics_listen defaults to 127.0.0.1:9100 and api_listen to 127.0.0.1:8080: setting one
// to the other's default makes both servers bind the same address, which only fails when
// twincastd starts.
TEST(Config, ControlListenersDifferAlsoFromTheOthersDefault) {
  for (const char* control : {"control: { api_listen: 127.0.0.1:9100 }\n", "control: { metrics_listen: 127.0.0.1:8080 }\n"}) {
    const auto r = parse_config(std::string(control) + kMinimal);
    ASSERT_EQ(r.errors.size(), 1U) << control << errors_of(r);
    EXPECT_EQ(r.errors[0].line, 1) << control;
  }
}

// A listener on 0.0.0.0 takes its port on every IPv4 address (and [::] on every IPv6
// one): ott.listen 0.0.0.0:8080 beside the API's default 127.0.0.1:8080 passed the check,
// then twincastd failed to start ("Address already in use").
TEST(Config, ListenersOnAWildcardAddressTakeItsPortOnEveryAddress) {
  const std::vector<std::tuple<std::string, std::string, int>> clashes = {
      {"ott: { listen: 0.0.0.0:8080 }\n", "ott", 1},
      {"control: { api_listen: 10.0.0.2:8090 }\nott: { listen: 0.0.0.0:8090 }\n", "ott", 2},
      {"control: { api_listen: 0.0.0.0:9100 }\n", "control.api_listen", 1},
      {"control: { api_listen: \"[::]:8080\", metrics_listen: \"[::1]:8080\" }\n", "control.metrics_listen", 1},
      {"control: { metrics_listen: 127.0.0.1:08080 }\n", "control.metrics_listen", 1},
  };
  for (const auto& [yaml, path, line] : clashes) {
    const auto r = parse_config(yaml + kMinimal);
    ASSERT_EQ(r.errors.size(), 1U) << yaml << errors_of(r);
    EXPECT_EQ(r.errors[0].path, path) << yaml;
    EXPECT_EQ(r.errors[0].line, line) << yaml;
  }
  // Other ports, or another family's wildcard (the IPv6 listener is v6-only): no clash.
  for (const char* yaml : {"ott: { listen: 0.0.0.0:8091 }\n", "control: { api_listen: \"[::]:8090\" }\n",
                           "control: { api_listen: 0.0.0.0:8080, metrics_listen: 0.0.0.0:9100 }\n"})
    EXPECT_TRUE(parse_config(yaml + std::string(kMinimal)).ok()) << yaml;
}

// What --check accepts as a listen address, twincastd binds: HttpServer::listen takes a
// decimal port and writes IPv6 in brackets, so "::1:8080" or a 0x port passed the check
// and then twincastd failed to start ("write IPv6 addresses as [addr]:port", "bad port").
TEST(Config, ListenAddressesAreWhatTheHttpServerBinds) {
  for (const char* listen : {"::1:8080", "127.0.0.1:0x1f90", "[]:8080"}) {
    SCOPED_TRACE(listen);
    EXPECT_ANY_THROW(twincast::control::HttpServer().listen(listen));
    const std::string quoted = std::string("\"") + listen + "\"";
    for (const auto& [yaml, path] : {std::pair{"control: { api_listen: " + quoted + " }\n", "control.api_listen"},
                                     std::pair{"ott: { listen: " + quoted + " }\n", "ott.listen"}}) {
      const auto r = parse_config(yaml + kMinimal);
      ASSERT_EQ(r.errors.size(), 1U) << errors_of(r);
      EXPECT_EQ(r.errors[0].path, path);
      EXPECT_EQ(r.errors[0].line, 1);
      EXPECT_NE(r.errors[0].message.find("is not a listen address"), std::string::npos) << r.errors[0].message;
    }
  }
  for (const char* listen : {"127.0.0.1:8080", "[::1]:8080", "localhost:8080"})
    EXPECT_TRUE(parse_config(std::string("control: { api_listen: \"") + listen + "\" }\n" + kMinimal).ok()) << listen;
}

// The first lcore runs the main loop, the second the packet worker: with one lcore
// Dataplane::start throws "no worker lcore" once twincastd runs.
TEST(Config, LcoresNameAWorker) {
  for (const char* lcores : {"\"0\"", "\"3\"", "\"2-2\""}) {
    const auto r = parse_config(std::string("dataplane: { lcores: ") + lcores + " }\n" + kMinimal);
    ASSERT_EQ(r.errors.size(), 1U) << lcores << "\n" << errors_of(r);
    EXPECT_EQ(r.errors[0].path, "dataplane.lcores");
  }
  EXPECT_TRUE(parse_config(std::string("dataplane: { lcores: \"2-3\" }\n") + kMinimal).ok());
}

// "inputs:" left empty in a rendition (the operator meant to fill it in) read as an empty
// list: the rendition was then "transcoded" with height 0 and video_kbps 0, which the
// config let through and the transcoder refuses when the packager makes it, so the
// channel's whole transcoded ladder stays "waiting" while --check said OK.
TEST(Config, ReceivedRenditionWithEmptyInputsIsAnError) {
  const auto r = parse_config(
      "channels:\n"
      "  - id: a\n"
      "    inputs: [ { srt: { port: 9000 } } ]\n"
      "    hls:\n"
      "      renditions:\n"
      "        - name: 540p\n"
      "          inputs:\n"
      "        - { name: 360p, height: 360, video_kbps: 800 }\n");
  ASSERT_EQ(r.errors.size(), 1U) << errors_of(r);
  EXPECT_EQ(r.errors[0].path, "channels[0].hls.renditions[0].inputs");
  EXPECT_EQ(r.errors[0].line, 7);
}

// key_length without passphrase_file: the operator asked for AES-256 and gets no
// encryption at all, silently. Like cbr_bps without cbr and local_port outside rendezvous,
// a key that cannot apply is an error.
TEST(Config, SrtKeyLengthWithoutPassphraseIsAnError) {
  const auto r = parse_config(
      "channels:\n"
      "  - id: a\n"
      "    inputs: [ { srt: { port: 9000, key_length: 32 } } ]\n"
      "    hls: true\n");
  ASSERT_EQ(r.errors.size(), 1U) << errors_of(r);
  EXPECT_EQ(r.errors[0].path, "channels[0].inputs[0].srt.key_length");
  EXPECT_EQ(r.errors[0].line, 3);
}

// What --check accepts, the parts that run it accept too: the SRT ingest (built from every
// SRT input when twincastd starts, and again after a reload has applied the new map, where
// its exception ends twincastd) and each channel's remuxer (built with the channel).
TEST(Config, WhatCheckAcceptsTheSrtIngestAndTheRemuxerAccept) {
  const std::vector<std::string> maps = {
      // two listeners on one port, one bind address each
      "channels:\n"
      "  - id: a\n"
      "    inputs: [ { srt: { port: 9000, streamid: one } } ]\n"
      "    hls: true\n"
      "  - id: b\n"
      "    inputs: [ { srt: { port: 9000, address: 127.0.0.1, streamid: two } } ]\n"
      "    hls: true\n",
      // a rendezvous input on a listener's port
      "channels:\n"
      "  - id: a\n"
      "    inputs:\n"
      "      - srt: { port: 9000 }\n"
      "      - srt: { mode: rendezvous, address: 192.0.2.7, port: 9000 }\n"
      "    hls: true\n",
      // a PMT PID and a rule target in the DVB SI range
      "channels:\n"
      "  - id: a\n"
      "    pmt_pid: 0x10\n"
      "    pids: [ { from: 0x100, to: 0x11 } ]\n"
      "    inputs: [ { srt: { port: 9000 } } ]\n"
      "    hls: true\n",
  };
  for (const auto& map : maps) {
    SCOPED_TRACE(map);
    const auto r = parse_config(map);
    if (!r.ok()) continue;  // refused with a line: what the operator needs
    std::vector<InputConfig> srt;
    for (const auto& ch : r.config->channels)
      for (const auto& in : ch.inputs)
        if (in.kind == InputKind::kSrt) srt.push_back(in);
    EXPECT_NO_THROW(twincast::control::SrtIngest(srt, [](std::size_t, std::span<const std::uint8_t>) {}));
    for (const auto& ch : r.config->channels) {
      twincast::mpegts::RemuxConfig rc;
      twincast::mpegts::RemuxServiceConfig s;
      s.pmt_pid = ch.pmt_pid;
      s.rules = ch.pid_rules;
      rc.services.push_back(s);
      EXPECT_NO_THROW(twincast::mpegts::Remuxer{rc});
    }
  }
}

// 00:00:00:00:00:00 is no station's address: rte_eth_dev_default_mac_addr_set refuses it
// (EINVAL, twincastd does not start) and where the PMD cannot set a MAC (af_packet) frames
// and ARP answers go out from the zero address.
TEST(Config, PortMacIsNotAllZero) {
  const auto r = parse_config(std::string("ports:\n"
                                          "  - { name: core, device: net_tap0, address: 10.0.0.2/24, mac: \"00:00:00:00:00:00\" }\n") +
                              std::string(kMinimal).substr(std::string(kMinimal).find("channels:")));
  ASSERT_EQ(r.errors.size(), 1U) << errors_of(r);
  EXPECT_EQ(r.errors[0].path, "ports[0].mac");
  EXPECT_EQ(r.errors[0].line, 2);
}

// A port resolves at most 64 unicast next hops (the data plane's neighbour table): with
// more unicast destinations inside the subnet, Dataplane refuses the plan ("more than 64
// unicast next hops") and twincastd does not start, though --check said OK.
TEST(Config, UnicastNextHopsPerPortFitTheNeighbourTable) {
  const auto with = [](int n) {
    std::string y = "ports:\n"
                    "  - { name: core, device: net_tap0, address: 10.0.0.2/24, gateway: 10.0.0.1 }\n"
                    "channels:\n"
                    "  - id: a\n"
                    "    inputs: [ { udp: { port: core, udp_port: 5000 } } ]\n"
                    "    outputs:\n";
    for (int k = 0; k < n; ++k)
      y += "      - udp: { port: core, address: 10.0.0." + std::to_string(10 + k) + ", udp_port: 5000 }\n";
    // outside the subnet: all through the gateway, one next hop more
    y += "      - udp: { port: core, address: 192.0.2.1, udp_port: 5000 }\n"
         "      - udp: { port: core, address: 192.0.2.2, udp_port: 5000 }\n";
    return y;
  };
  EXPECT_TRUE(parse_config(with(63)).ok()) << errors_of(parse_config(with(63)));
  const auto r = parse_config(with(64));
  ASSERT_EQ(r.errors.size(), 1U) << errors_of(r);
  EXPECT_EQ(r.errors[0].path, "channels[0].outputs[64].udp.address");
}

// The data plane keys its neighbour table by next hop and VLAN (an output on its own VLAN
// resolves its next hop there): 65 unicast outputs through the gateway, each on a VLAN of
// its own, are one next hop to the check above but 65 neighbours to Dataplane, which
// refuses the plan ("more than 64 unicast next hops") and twincastd does not start,
// though --check said OK.
TEST(Config, UnicastNextHopsPerPortAreCountedPerVlan) {
  const auto with = [](int n) {
    std::string y = "ports:\n"
                    "  - { name: core, device: net_tap0, address: 10.0.0.2/24, gateway: 10.0.0.1 }\n"
                    "channels:\n"
                    "  - id: a\n"
                    "    inputs: [ { udp: { port: core, udp_port: 5000 } } ]\n"
                    "    outputs:\n";
    for (int k = 0; k < n; ++k)
      y += "      - udp: { port: core, address: 192.0.2." + std::to_string(1 + k) +
           ", udp_port: 5000, vlan: " + std::to_string(100 + k) + " }\n";
    return y;
  };
  EXPECT_TRUE(parse_config(with(64)).ok()) << errors_of(parse_config(with(64)));
  const auto r = parse_config(with(65));
  ASSERT_EQ(r.errors.size(), 1U) << errors_of(r);
  EXPECT_EQ(r.errors[0].path, "channels[0].outputs[64].udp.address");
}

// A port's mempool feeds its RX descriptors, which hold their mbufs for as long as the
// port runs (net_tap, and NICs: ixgbe, i40e, mlx5), its TX descriptors until the driver
// frees what it sent, and the mempool caches of the lcores that take from it. mbufs: 1023
// (the lower bound) with the default 1024 RX descriptors started on net_tap with every
// mbuf in the RX queue (rte_mempool_avail_count 0): not one datagram, IGMP report or ARP
// reply could be sent (tx_no_mbuf), and the tap could not replace what it received.
TEST(Config, PortMbufsLeaveRoomBeyondItsDescriptors) {
  const auto with = [](const std::string& extra) {
    return "ports:\n"
           "  - { name: core, device: net_tap0, address: 10.0.0.2/24" + extra + " }\n" +
           std::string(kMinimal).substr(std::string(kMinimal).find("channels:"));
  };
  for (const char* good : {"", ", mbufs: 3071", ", rx_descriptors: 4096, tx_descriptors: 2048, mbufs: 8191",
                           ", rx_descriptors: 64, tx_descriptors: 64, mbufs: 1152"})
    EXPECT_TRUE(parse_config(with(good)).ok()) << good << "\n" << errors_of(parse_config(with(good)));
  for (const char* bad : {", mbufs: 1023", ", mbufs: 3070", ", rx_descriptors: 8192", ", tx_descriptors: 32768, mbufs: 32768"}) {
    const auto r = parse_config(with(bad));
    ASSERT_EQ(r.errors.size(), 1U) << bad << "\n" << errors_of(r);
    EXPECT_EQ(r.errors[0].path, "ports[0].mbufs");
    EXPECT_EQ(r.errors[0].line, 2);
  }
}

}  // namespace

// An output sending onto a group and UDP port that a channel receives on the same port (a
// copy-paste slip: the input's group in the output) puts two senders of one stream on the
// managed network, and set-top boxes joined to it see both. On another port it is another
// network: allowed.
TEST(Config, AnOutputDoesNotSendOntoAnInputsGroup) {
  const auto with = [](const std::string& out_port) {
    return "ports:\n"
           "  - { name: core, device: net_tap0, address: 10.0.0.2/24 }\n"
           "  - { name: edge, device: net_tap1, address: 10.1.0.2/24 }\n"
           "channels:\n"
           "  - id: a\n"
           "    inputs: [ { udp: { port: core, group: 239.1.1.1, udp_port: 5000, source: 10.0.0.9 } } ]\n"
           "    outputs: [ { udp: { port: core, group: 239.10.0.1, udp_port: 5000 } } ]\n"
           "  - id: b\n"
           "    inputs: [ { udp: { port: core, group: 239.1.1.2, udp_port: 5000 } } ]\n"
           "    outputs: [ { udp: { port: " + out_port + ", group: 239.1.1.1, udp_port: 5000 } } ]\n";
  };
  EXPECT_TRUE(parse_config(with("edge")).ok()) << errors_of(parse_config(with("edge")));
  const auto r = parse_config(with("core"));
  ASSERT_EQ(r.errors.size(), 1U) << errors_of(r);
  EXPECT_EQ(r.errors[0].path, "channels[1].outputs[0].udp.group");
  EXPECT_EQ(r.errors[0].line, 10);
  EXPECT_NE(r.errors[0].message.find("channels[0].inputs[0]"), std::string::npos) << r.errors[0].message;
}

// A vdev is known by its name, the part before the first ',': two ports on
// "net_null0,size=64" and "net_null0,size=128" are one EAL device (the second --vdev
// replaces the first's arguments), both ports look it up as "net_null0", and the second
// rte_eth_dev_configure finds it started: twincastd does not start, though --check said OK.
TEST(Config, TwoPortsAreNotOneDeviceWithOtherArguments) {
  const auto with = [](const std::string& second) {
    return "ports:\n"
           "  - { name: core, device: \"net_null0,size=64\", address: 10.0.0.2/24 }\n"
           "  - { name: edge, device: \"" + second + "\", address: 10.1.0.2/24 }\n" +
           std::string(kMinimal).substr(std::string(kMinimal).find("channels:"));
  };
  EXPECT_TRUE(parse_config(with("net_null1,size=64")).ok()) << errors_of(parse_config(with("net_null1,size=64")));
  for (const char* device : {"net_null0,size=128", "net_null0"}) {
    const auto r = parse_config(with(device));
    ASSERT_EQ(r.errors.size(), 1U) << device << "\n" << errors_of(r);
    EXPECT_EQ(r.errors[0].path, "ports[1].device");
    EXPECT_EQ(r.errors[0].line, 3);
  }
}

// A PCI device has one name however it is written: "3b:00.1" (as lspci prints it) and
// "0000:3B:00.1" are EAL's "0000:3b:00.1". Two ports on it passed --check, and twincastd
// did not start.
TEST(Config, TwoPortsAreNotOnePciDeviceWrittenTwoWays) {
  const auto with = [](const std::string& second) {
    return "ports:\n"
           "  - { name: core, device: \"0000:3b:00.1\", address: 10.0.0.2/24 }\n"
           "  - { name: edge, device: \"" + second + "\", address: 10.1.0.2/24 }\n" +
           std::string(kMinimal).substr(std::string(kMinimal).find("channels:"));
  };
  EXPECT_TRUE(parse_config(with("0000:3b:00.0")).ok()) << errors_of(parse_config(with("0000:3b:00.0")));
  for (const char* device : {"3b:00.1", "0000:3B:00.1", "3B:00.1,rxq_pkt_size=128"}) {
    const auto r = parse_config(with(device));
    ASSERT_EQ(r.errors.size(), 1U) << device << "\n" << errors_of(r);
    EXPECT_EQ(r.errors[0].path, "ports[1].device");
    EXPECT_EQ(r.errors[0].line, 3);
  }
}

// A port's address is a host of its subnet, as its gateway must be: the network address
// or the subnet's broadcast address (10.0.0.255/24) is no station's, and the port would
// send from it and answer ARP for it. /31 and /32 have no such addresses.
TEST(Config, PortAddressIsAHostOfItsSubnet) {
  const auto with = [](const std::string& address) {
    return "ports:\n"
           "  - { name: core, device: net_tap0, address: " + address + " }\n" +
           std::string(kMinimal).substr(std::string(kMinimal).find("channels:"));
  };
  for (const char* good : {"10.0.0.1/24", "10.0.0.254/24", "10.0.0.0/31", "10.0.0.1/31", "10.0.0.0/32"})
    EXPECT_TRUE(parse_config(with(good)).ok()) << good << "\n" << errors_of(parse_config(with(good)));
  for (const char* bad : {"10.0.0.0/24", "10.0.0.255/24", "10.0.0.0/8", "10.0.3.255/22"}) {
    const auto r = parse_config(with(bad));
    ASSERT_EQ(r.errors.size(), 1U) << bad << "\n" << errors_of(r);
    EXPECT_EQ(r.errors[0].path, "ports[0].address");
    EXPECT_EQ(r.errors[0].line, 2);
  }
}

// EAL numbers lcores 0..RTE_MAX_LCORE-1 (127): "-l 0,128" (or a number too big to read)
// makes rte_eal_init fail ("invalid core list syntax") and twincastd does not start,
// though --check said OK.
TEST(Config, LcoresAreWithinWhatEalNumbers) {
  EXPECT_TRUE(parse_config(std::string("dataplane: { lcores: \"0,127\" }\n") + kMinimal).ok());
  for (const char* lcores : {"\"0,128\"", "\"0-200\"", "\"0,99999999999999999999\"", "\"128,129\""}) {
    const auto r = parse_config(std::string("dataplane: { lcores: ") + lcores + " }\n" + kMinimal);
    ASSERT_EQ(r.errors.size(), 1U) << lcores << "\n" << errors_of(r);
    EXPECT_EQ(r.errors[0].path, "dataplane.lcores");
    EXPECT_EQ(r.errors[0].line, 1);
  }
}
