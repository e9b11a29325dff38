// The YAML channel map: the example files in config/ parse into the values they say,
// defaults apply, every invalid file in tests/config/invalid/ yields exactly the errors
// its "# expect:" lines name, bad bytes never crash, and `twincastd --check` reports both.
#include "twincast/control/config.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
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

}  // namespace
