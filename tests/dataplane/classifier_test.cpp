// FlowClassifier: exact matches, SSM beating ASM, capacity, many flows, misses.
#include "twincast/dataplane/classifier.hpp"

#include <gtest/gtest.h>

#include <random>
#include <set>
#include <tuple>

#include "twincast/dataplane/net.hpp"

namespace twincast::dataplane {
namespace {

using net::ipv4;

TEST(FlowClassifier, AsmMatchesAnySourceSsmOnlyItsOwn) {
  FlowClassifier c(8);
  const Ipv4 g = ipv4(239, 1, 1, 1);
  EXPECT_EQ(c.lookup(g, 5000, ipv4(10, 0, 0, 1)), FlowClassifier::kNoInput);  // empty
  ASSERT_TRUE(c.add(g, 5000, 0, 1));
  ASSERT_TRUE(c.add(g, 5000, ipv4(10, 0, 0, 9), 2));
  ASSERT_TRUE(c.add(ipv4(232, 1, 1, 1), 5000, ipv4(10, 0, 0, 9), 3));
  EXPECT_EQ(c.size(), 3u);

  EXPECT_EQ(c.lookup(g, 5000, ipv4(10, 0, 0, 1)), 1u);  // ASM
  EXPECT_EQ(c.lookup(g, 5000, ipv4(10, 0, 0, 9)), 2u);  // SSM beats ASM
  EXPECT_EQ(c.lookup(g, 5001, ipv4(10, 0, 0, 9)), FlowClassifier::kNoInput);  // other port
  EXPECT_EQ(c.lookup(ipv4(232, 1, 1, 1), 5000, ipv4(10, 0, 0, 9)), 3u);
  EXPECT_EQ(c.lookup(ipv4(232, 1, 1, 1), 5000, ipv4(10, 0, 0, 8)), FlowClassifier::kNoInput);  // SSM only
  EXPECT_EQ(c.lookup(ipv4(239, 1, 1, 2), 5000, 0), FlowClassifier::kNoInput);
}

TEST(FlowClassifier, DuplicatesAndCapacity) {
  FlowClassifier c(2);
  EXPECT_TRUE(c.add(1, 1, 0, 0));
  EXPECT_FALSE(c.add(1, 1, 0, 5));  // same key
  EXPECT_TRUE(c.add(1, 2, 0, 1));
  EXPECT_FALSE(c.add(1, 3, 0, 2));  // full
  EXPECT_FALSE(FlowClassifier(4).add(1, 1, 0, FlowClassifier::kNoInput));
  EXPECT_EQ(c.lookup(1, 1, 77), 0u);
  EXPECT_EQ(c.lookup(1, 2, 0), 1u);
}

TEST(FlowClassifier, ManyFlowsAllFoundNoFalseHits) {
  constexpr std::size_t kN = 2000;
  FlowClassifier c(kN);
  std::mt19937 rng(7);
  std::set<std::tuple<Ipv4, std::uint16_t, Ipv4>> keys;
  std::vector<std::tuple<Ipv4, std::uint16_t, Ipv4>> order;
  while (keys.size() < kN) {
    const Ipv4 g = ipv4(239, static_cast<std::uint8_t>(rng() % 4), static_cast<std::uint8_t>(rng()),
                        static_cast<std::uint8_t>(rng()));
    const auto p = static_cast<std::uint16_t>(5000 + rng() % 3);
    const Ipv4 s = (rng() % 2) != 0 ? ipv4(10, 0, 0, static_cast<std::uint8_t>(1 + rng() % 3)) : 0;
    if (keys.insert({g, p, s}).second) order.emplace_back(g, p, s);
  }
  for (std::uint32_t i = 0; i < kN; ++i) {
    const auto& [g, p, s] = order[i];
    ASSERT_TRUE(c.add(g, p, s, i));
  }
  for (std::uint32_t i = 0; i < kN; ++i) {
    const auto& [g, p, s] = order[i];
    if (s != 0) {
      EXPECT_EQ(c.lookup(g, p, s), i);
    } else {
      // ASM: any source that has no SSM entry of its own finds it.
      EXPECT_EQ(c.lookup(g, p, ipv4(192, 168, 0, 1)), i);
    }
  }
  for (int i = 0; i < 5000; ++i) {
    const Ipv4 g = ipv4(238, static_cast<std::uint8_t>(rng()), 0, static_cast<std::uint8_t>(rng()));
    EXPECT_EQ(c.lookup(g, 5000, 0), FlowClassifier::kNoInput);
  }
}

}  // namespace
}  // namespace twincast::dataplane
