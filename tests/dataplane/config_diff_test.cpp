// diff_configs(): what a reload adds, removes, restarts, updates in place and leaves alone.
#include <gtest/gtest.h>

#include "twincast/dataplane/config.hpp"

namespace twincast::dataplane {
namespace {

using V = std::vector<std::string>;

ChannelConfig channel(const std::string& id, std::uint8_t last_octet) {
  ChannelConfig c;
  c.id = id;
  c.name = id;
  InputConfig in;
  in.name = "main";
  in.port = "p0";
  in.address = 0xEF010100u | last_octet;
  in.udp_port = 5000;
  c.inputs.push_back(in);
  OutputConfig out;
  out.port = "p0";
  out.address = 0xEF0A0000u | last_octet;
  out.udp_port = 5000;
  c.outputs.push_back(out);
  return c;
}

ApplianceConfig base() {
  ApplianceConfig a;
  PortConfig p;
  p.name = "p0";
  p.device = "net_null0";
  a.ports.push_back(p);
  a.channels = {channel("a", 1), channel("b", 2), channel("c", 3)};
  return a;
}

TEST(ConfigDiff, IdenticalIsEmpty) {
  const ConfigDiff d = diff_configs(base(), base());
  EXPECT_TRUE(d.empty());
  EXPECT_TRUE(d.live());
  EXPECT_EQ(d.channels_unchanged, (V{"a", "b", "c"}));
}

TEST(ConfigDiff, AddedRemovedChangedAndUnchangedByIdNotByPosition) {
  ApplianceConfig next = base();
  next.channels.erase(next.channels.begin());       // a removed: b and c move up
  next.channels[1].source_service_id = 7;            // c changed
  next.channels.push_back(channel("d", 4));          // d added
  const ConfigDiff d = diff_configs(base(), next);
  EXPECT_EQ(d.channels_removed, V{"a"});
  EXPECT_EQ(d.channels_changed, V{"c"});
  EXPECT_EQ(d.channels_added, V{"d"});
  EXPECT_EQ(d.channels_unchanged, V{"b"});
  EXPECT_TRUE(d.live());
  EXPECT_FALSE(d.empty());
}

TEST(ConfigDiff, EveryFieldCounts) {
  ApplianceConfig next = base();
  next.channels[0].failover.revert_holdoff_ms += 1;
  next.channels[1].pid_rules.push_back(mpegts::PidRule{0x100, false, 0x200});
  next.channels[2].inputs[0].passphrase = "0123456789";
  const ConfigDiff d = diff_configs(base(), next);
  EXPECT_EQ(d.channels_changed, (V{"a", "b", "c"}));
  ApplianceConfig same = next;
  EXPECT_TRUE(diff_configs(next, same).empty());
}

TEST(ConfigDiff, OutputsThatOnlyMoveUpdateTheChannelInPlace) {
  ApplianceConfig next = base();
  next.channels[0].outputs[0].ttl = 3;
  next.channels[0].outputs[0].dscp = 46;
  next.channels[1].outputs[0].address = 0xEF0B0001u;
  next.channels[1].outputs[0].udp_port = 6000;
  next.channels[1].outputs[0].source_port = 6001;
  next.channels[1].outputs[0].kind = OutputKind::kRtp;
  next.channels[2].outputs[0].vlan = 12;
  next.channels[2].outputs[0].source = 0x0A000001u;
  next.channels[2].outputs[0].port = "p1";
  ConfigDiff d = diff_configs(base(), next);
  EXPECT_EQ(d.channels_updated, (V{"a", "b", "c"}));
  EXPECT_TRUE(d.channels_changed.empty());
  EXPECT_FALSE(d.empty());
  EXPECT_TRUE(updated_in_place(base().channels[0], next.channels[0]));

  // Outputs on one schedule may swap places; on two schedules, a swap restarts the channel
  // (the kept pacers feed outputs by their place).
  ApplianceConfig two = base();
  two.channels[0].outputs.push_back(two.channels[0].outputs[0]);
  two.channels[0].outputs[1].udp_port = 5002;
  next = two;
  std::swap(next.channels[0].outputs[0], next.channels[0].outputs[1]);
  EXPECT_EQ(diff_configs(two, next).channels_updated, V{"a"});
  two.channels[0].outputs[1].packets_per_datagram = 4;
  next = two;
  std::swap(next.channels[0].outputs[0], next.channels[0].outputs[1]);
  EXPECT_EQ(diff_configs(two, next).channels_changed, V{"a"});

  // The schedule, the number of outputs, or anything besides the outputs: a restart.
  next = base();
  next.channels[0].outputs[0].packets_per_datagram = 4;
  next.channels[1].outputs[0].pacing = PacingMode::kCbr;
  next.channels[1].outputs[0].cbr_bps = 2'000'000;
  next.channels[2].outputs.push_back(next.channels[2].outputs[0]);
  d = diff_configs(base(), next);
  EXPECT_EQ(d.channels_changed, (V{"a", "b", "c"}));
  EXPECT_TRUE(d.channels_updated.empty());
  next = base();
  next.channels[0].outputs[0].ttl = 3;
  next.channels[0].service_id = 9;
  d = diff_configs(base(), next);
  EXPECT_EQ(d.channels_changed, V{"a"});

  // A member of a multiplex that only moves its own output leaves the multiplex alone; a
  // multiplex change still restarts a member that was moved.
  ApplianceConfig run = base();
  MultiplexConfig m;
  m.id = "mux";
  m.channels = {"a", "b"};
  run.multiplexes.push_back(m);
  next = run;
  next.channels[0].outputs[0].ttl = 3;
  d = diff_configs(run, next);
  EXPECT_TRUE(d.multiplexes_changed.empty());
  EXPECT_EQ(d.channels_updated, V{"a"});
  EXPECT_EQ(d.channels_unchanged, (V{"b", "c"}));
  next.multiplexes[0].network_name = "other";
  d = diff_configs(run, next);
  EXPECT_EQ(d.multiplexes_changed, V{"mux"});
  EXPECT_EQ(d.channels_changed, (V{"a", "b"}));
  EXPECT_TRUE(d.channels_updated.empty());
}

// A new name, provider, LCN or priority (alone, together, or with outputs that move) keeps
// the channel running: its tables are renamed, its OTT tier recomputed. The service id, PMT
// PID, HLS and anything else restart it.
TEST(ConfigDiff, ARenameUpdatesTheChannelInPlace) {
  ApplianceConfig next = base();
  next.channels[0].name = "A";
  next.channels[0].provider = "Provider";
  next.channels[1].lcn = 12;
  next.channels[1].outputs[0].ttl = 9;
  next.channels[2].priority = 7;
  ConfigDiff d = diff_configs(base(), next);
  EXPECT_EQ(d.channels_updated, (V{"a", "b", "c"}));
  EXPECT_TRUE(d.channels_changed.empty());
  for (std::size_t c = 0; c < 3; ++c) EXPECT_TRUE(updated_in_place(base().channels[c], next.channels[c])) << c;
  next = base();
  next.channels[0].name = "A";
  next.channels[0].service_id = 3;
  next.channels[1].pmt_pid = 0x1010;
  next.channels[2].hls = true;
  d = diff_configs(base(), next);
  EXPECT_EQ(d.channels_changed, (V{"a", "b", "c"}));
  EXPECT_TRUE(d.channels_updated.empty());

  // A renamed member leaves its multiplex running (the worker renames its service there).
  ApplianceConfig run = base();
  MultiplexConfig m;
  m.id = "mux";
  m.channels = {"a", "b"};
  run.multiplexes.push_back(m);
  next = run;
  next.channels[1].name = "B";
  next.channels[1].lcn = 3;
  d = diff_configs(run, next);
  EXPECT_TRUE(d.multiplexes_changed.empty());
  EXPECT_EQ(d.channels_updated, V{"b"});
  EXPECT_EQ(d.channels_unchanged, (V{"a", "c"}));
}

TEST(ConfigDiff, PortsEalAndListenersNeedARestartButTheTokenFileDoesNot) {
  ApplianceConfig next = base();
  next.ports[0].vlan = 10;
  next.eal.memory_mb = 1024;
  next.control.api_listen = "127.0.0.1:8081";
  next.control.token_file = "/etc/twincast/token";
  const ConfigDiff d = diff_configs(base(), next);
  EXPECT_FALSE(d.live());
  EXPECT_EQ(d.restart_reasons, (V{"dataplane.eal changed", "dataplane.ports changed", "control.api_listen changed"}));
}

TEST(ConfigDiff, AMultiplexChangeRestartsItsMembersOnly) {
  ApplianceConfig run = base();
  MultiplexConfig m;
  m.id = "mux";
  m.channels = {"a", "b"};
  run.multiplexes.push_back(m);
  EXPECT_TRUE(diff_configs(run, run).empty());

  ApplianceConfig next = run;
  next.multiplexes[0].network_name = "other";
  ConfigDiff d = diff_configs(run, next);
  EXPECT_EQ(d.multiplexes_changed, V{"mux"});
  EXPECT_EQ(d.channels_changed, (V{"a", "b"}));
  EXPECT_EQ(d.channels_unchanged, V{"c"});

  // A member's own change (other than moving outputs or a rename) rebuilds the multiplex
  // (and with it the other member).
  next = run;
  next.channels[1].failover.timeout_ms = 900;
  d = diff_configs(run, next);
  EXPECT_EQ(d.multiplexes_changed, V{"mux"});
  EXPECT_EQ(d.channels_changed, (V{"a", "b"}));

  // Removing the multiplex restarts its former members; adding one restarts the new ones.
  next = run;
  next.multiplexes.clear();
  d = diff_configs(run, next);
  EXPECT_EQ(d.multiplexes_removed, V{"mux"});
  EXPECT_EQ(d.channels_changed, (V{"a", "b"}));
  d = diff_configs(next, run);
  EXPECT_EQ(d.multiplexes_added, V{"mux"});
  EXPECT_EQ(d.channels_changed, (V{"a", "b"}));
  EXPECT_EQ(d.channels_unchanged, V{"c"});
}

// A channel in two multiplexes: when one of them is rebuilt the channel gets a new
// pipeline, so the other, fed by taps on it, is rebuilt too, and so on along the chain
// (m1 {a, b}, m2 {b, c}, m3 {c}); an unrelated multiplex stays. A renamed channel shared by
// two kept multiplexes keeps them both.
TEST(ConfigDiff, AChannelRestartedByOneMultiplexRebuildsEveryMultiplexItFeeds) {
  ApplianceConfig run = base();
  run.channels.push_back(channel("d", 4));
  MultiplexConfig m1;
  m1.id = "m1";
  m1.channels = {"a", "b"};
  MultiplexConfig m2 = m1;
  m2.id = "m2";
  m2.channels = {"b", "c"};
  MultiplexConfig m3 = m1;
  m3.id = "m3";
  m3.channels = {"c"};
  MultiplexConfig m4 = m1;
  m4.id = "m4";
  m4.channels = {"d"};
  run.multiplexes = {m1, m2, m3, m4};
  for (const bool removed : {false, true}) {
    SCOPED_TRACE(removed ? "m3 removed" : "m3 changed");
    ApplianceConfig next = run;
    if (removed) next.multiplexes.erase(next.multiplexes.begin() + 2);
    else next.multiplexes[2].network_name = "other";
    const ConfigDiff d = diff_configs(run, next);
    EXPECT_EQ(d.channels_changed, (V{"a", "b", "c"}));
    EXPECT_EQ(d.channels_unchanged, V{"d"});
    EXPECT_EQ(d.multiplexes_changed, removed ? (V{"m1", "m2"}) : (V{"m1", "m2", "m3"}));
    EXPECT_EQ(d.multiplexes_removed, removed ? V{"m3"} : V{});
  }
  ApplianceConfig next = run;
  next.channels[1].name = "B";
  const ConfigDiff d = diff_configs(run, next);
  EXPECT_TRUE(d.multiplexes_changed.empty());
  EXPECT_EQ(d.channels_updated, V{"b"});
}

}  // namespace
}  // namespace twincast::dataplane
