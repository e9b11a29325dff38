// What the HLS packager's tests share (hls_packager_test, hls_abr_test, hls_encryption_test):
// a DPDK pool for real OttFeeds (the EAL comes up in each program's EalEnvironment), fake
// clocks, the h264_aac.ts fixture (6 s, GOP 1 s) as chained copies on one timeline, and a
// media playlist reader.
//
// Clocks: the feed's clock is the test's (mono_ns_), and the wall clock is kT0 + that, so a
// segment's PROGRAM-DATE-TIME is kT0 + the time of its first chunk (whole milliseconds) and
// a channel made at mono_ns_ = 0 numbers its segments (and key ids) from kT0 (the packager's
// default numbering: the wall clock's ms when the channel is made).
#pragma once

#include <gtest/gtest.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <memory>
#include <optional>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "tests_common.hpp"
#include "twincast/control/hls_origin.hpp"
#include "twincast/control/hls_packager.hpp"
#include "twincast/dataplane/ott_feed.hpp"
#include "twincast/mpegts/file_times.hpp"
#include "twincast/mpegts/pes.hpp"

namespace twincast::control::packager_test {

inline constexpr std::int64_t kT0 = 1'795'642'800'000;  // 2026-11-25T21:40:00Z
inline constexpr std::int64_t kCopyMs = 6'100;           // each copy of the 6 s file starts 6.1 s after the last

// --- input: chained copies of the fixture ---

inline void write_ts(std::uint8_t* b, std::uint8_t prefix, std::uint64_t t) {
  b[0] = static_cast<std::uint8_t>((std::uint64_t{prefix} << 4) | ((t >> 29) & 0x0E) | 1);
  b[1] = static_cast<std::uint8_t>(t >> 22);
  b[2] = static_cast<std::uint8_t>(((t >> 14) & 0xFE) | 1);
  b[3] = static_cast<std::uint8_t>(t >> 7);
  b[4] = static_cast<std::uint8_t>(((t << 1) & 0xFE) | 1);
}

// PCR, PTS and DTS moved forward by `ms` (copies of the file chained into one timeline).
inline std::vector<mpegts::TsPacket> shifted(std::vector<mpegts::TsPacket> pkts, std::int64_t ms) {
  const auto ticks = static_cast<std::uint64_t>(ms) * 90;
  for (auto& p : pkts) {
    if (p.has_pcr()) p.set_pcr(p.pcr() + ticks * 300);
    if (!p.payload_unit_start() || p.pid() < 0x100 || p.pid() >= 0x1000) continue;
    auto pl = p.payload();
    const auto h = mpegts::parse_pes_header(pl);
    if (!h || !h->has_pts) continue;
    write_ts(pl.data() + 9, h->has_dts ? 3 : 2, (h->pts + ticks) % mpegts::kPtsWrap);
    if (h->has_dts) write_ts(pl.data() + 14, 1, (h->dts + ticks) % mpegts::kPtsWrap);
  }
  return pkts;
}

struct Source {
  std::vector<mpegts::TsPacket> packets = twincast::test::read_packets(twincast::test::fixture("h264_aac.ts"));
  std::vector<std::uint64_t> ms;  // per packet, from the file's PCR
  Source() {
    const auto t = mpegts::file_times(packets);
    for (auto ns : t.ns) ms.push_back(ns / 1'000'000);
  }
};
inline const Source& source() {
  static const Source s;
  return s;
}

// --- playlist reading ---

inline std::int64_t iso_ms(const std::string& s) {  // "2026-11-25T21:40:00.123Z" or "...:00Z"
  std::tm tm{};
  tm.tm_year = std::stoi(s.substr(0, 4)) - 1900;
  tm.tm_mon = std::stoi(s.substr(5, 2)) - 1;
  tm.tm_mday = std::stoi(s.substr(8, 2));
  tm.tm_hour = std::stoi(s.substr(11, 2));
  tm.tm_min = std::stoi(s.substr(14, 2));
  tm.tm_sec = std::stoi(s.substr(17, 2));
  return static_cast<std::int64_t>(timegm(&tm)) * 1000 + (s.size() >= 23 && s[19] == '.' ? std::stoi(s.substr(20, 3)) : 0);
}

inline std::string epoch_s(std::int64_t ms) {  // "1795642812.345"
  char b[32];
  std::snprintf(b, sizeof b, "%lld.%03lld", static_cast<long long>(ms / 1000), static_cast<long long>(ms % 1000));
  return b;
}

struct Entry {
  std::string uri;             // as listed (a query the origin added included)
  std::uint64_t sequence = 0;  // the number in its name (seg-<n>.ts, seg-<r>-<n>.ts, audio-<pid>-<n>.ts)
  std::uint64_t position = 0;  // MEDIA-SEQUENCE + its index (its media sequence number, RFC 8216 6.3.2)
  std::int64_t pdt_ms = 0;
  double duration_s = 0;
  bool discontinuity = false;
  std::string key;  // the EXT-X-KEY URI in force, or ""
};

struct Playlist {
  std::optional<std::uint64_t> media_sequence;
  std::optional<std::uint64_t> discontinuity_sequence;
  std::string type;  // PLAYLIST-TYPE or ""
  bool end_list = false;
  std::vector<Entry> entries;
};

// The number before ".ts" after the last '-' of a segment URI ("seg-lo-12.ts?token=..." -> 12).
inline std::uint64_t uri_sequence(std::string_view uri) {
  uri = uri.substr(0, uri.find('?'));
  EXPECT_TRUE(uri.ends_with(".ts")) << uri;
  const std::string_view name = uri.substr(0, uri.size() - std::min<std::size_t>(uri.size(), 3));
  return std::stoull(std::string(name.substr(name.rfind('-') + 1)));
}

inline Playlist parse_playlist(const std::string& text) {
  Playlist p;
  std::istringstream in(text);
  Entry e;
  std::string key;
  bool first = true;
  for (std::string l; std::getline(in, l);) {
    if (first) {
      EXPECT_EQ(l, "#EXTM3U");
    }
    first = false;
    auto value = [&](std::string_view tag) { return l.substr(tag.size()); };
    constexpr std::string_view kKey = "#EXT-X-KEY:METHOD=AES-128,URI=\"";
    if (l.rfind("#EXT-X-MEDIA-SEQUENCE:", 0) == 0) p.media_sequence = std::stoull(value("#EXT-X-MEDIA-SEQUENCE:"));
    else if (l.rfind("#EXT-X-DISCONTINUITY-SEQUENCE:", 0) == 0)
      p.discontinuity_sequence = std::stoull(value("#EXT-X-DISCONTINUITY-SEQUENCE:"));
    else if (l.rfind("#EXT-X-PLAYLIST-TYPE:", 0) == 0) p.type = value("#EXT-X-PLAYLIST-TYPE:");
    else if (l == "#EXT-X-ENDLIST") p.end_list = true;
    else if (l == "#EXT-X-DISCONTINUITY") e.discontinuity = true;
    else if (l.rfind(kKey, 0) == 0) key = l.substr(kKey.size(), l.find('"', kKey.size()) - kKey.size());
    else if (l.rfind("#EXT-X-PROGRAM-DATE-TIME:", 0) == 0) e.pdt_ms = iso_ms(value("#EXT-X-PROGRAM-DATE-TIME:"));
    else if (l.rfind("#EXTINF:", 0) == 0) e.duration_s = std::stod(value("#EXTINF:"));
    else if (!l.empty() && l[0] != '#') {
      e.uri = l;
      e.sequence = uri_sequence(l);
      e.position = p.media_sequence.value_or(0) + p.entries.size();
      e.key = key;
      p.entries.push_back(e);
      e = Entry{};
    }
  }
  return p;
}

// The discontinuity sequence number of a playlist's last entry (RFC 8216 6.2.2): the
// playlist's DISCONTINUITY-SEQUENCE plus the tags on its entries.
inline std::uint64_t last_discontinuity_sequence(const Playlist& p) {
  std::uint64_t n = p.discontinuity_sequence.value_or(0);
  for (const Entry& e : p.entries) n += e.discontinuity ? 1 : 0;
  return n;
}

// --- the fixture ---

class PackagerTest : public ::testing::Test {
 protected:
  explicit PackagerTest(unsigned n_mbufs = 1023) : n_mbufs_(n_mbufs) {}

  void SetUp() override {
    static int n = 0;
    pool_ = rte_pktmbuf_pool_create(("tc_pkf" + std::to_string(n++)).c_str(), n_mbufs_, 0, 0,
                                    static_cast<std::uint16_t>(RTE_PKTMBUF_HEADROOM + dataplane::OttFeed::kChunkBytes),
                                    SOCKET_ID_ANY);
    ASSERT_NE(pool_, nullptr);
  }
  void TearDown() override {
    origin_.reset();
    packager_.reset();
    feeds_.clear();
    if (pool_ != nullptr) {
      EXPECT_EQ(rte_mempool_in_use_count(pool_), 0u);
      rte_mempool_free(pool_);
    }
  }

  dataplane::OttFeed* new_feed(std::size_t capacity = 1024) {
    static int n = 0;
    feeds_.push_back(std::make_unique<dataplane::OttFeed>("tc_pkf_f" + std::to_string(n++), capacity, pool_));
    return feeds_.back().get();
  }

  // Channel "news" on feed_ with one rendition "lo" (a new feed, fed the same chunks as
  // feed_), set on the packager; returned for a test to change and set again.
  PackagedChannel news_with_rendition_lo() {
    dataplane::OttFeed* lo = new_feed();
    also_.push_back(lo);
    PackagedChannel c{"news", "News", feed_};
    c.renditions.push_back(PackagedRendition{"lo", lo});
    packager_->set_channels({c});
    return c;
  }

  // The fake clocks (see the top of this file).
  HlsPackagerOptions options() {
    HlsPackagerOptions o;
    o.mono_ns = [this] { return mono_ns_; };
    o.wall_ms = [this] { return kT0 + static_cast<std::int64_t>(mono_ns_ / 1'000'000); };
    return o;
  }

  // Copies [from, to) of the file into feed_ (and also_) on the chained timeline: copy k at
  // k * kCopyMs, each millisecond of it stretched to `scale` ms of the clocks, not paced;
  // poll_once() every 256 chunks and at the end, `each_poll` after each.
  template <typename Fn>
  void feed_copies(int from, int to, std::uint64_t scale, Fn each_poll) {
    const Source& src = source();
    std::size_t chunks = 0;
    for (int k = from; k < to; ++k) {
      const auto pkts = shifted(src.packets, k * kCopyMs);
      for (std::size_t i = 0; i < pkts.size(); i += dataplane::OttFeed::kChunkPackets) {
        const std::size_t n = std::min(dataplane::OttFeed::kChunkPackets, pkts.size() - i);
        const std::uint64_t ms = (static_cast<std::uint64_t>(k * kCopyMs) + src.ms[i]) * scale;
        mono_ns_ = std::max(mono_ns_, ms * 1'000'000);
        const std::span<const mpegts::TsPacket> chunk(pkts.data() + i, n);
        feed_->on_packets(0, chunk, ms * 1'000'000);
        for (auto* f : also_) f->on_packets(0, chunk, ms * 1'000'000);
        if (++chunks % 256 == 0) {
          packager_->poll_once();
          each_poll();
        }
      }
    }
    packager_->poll_once();
    each_poll();
    ASSERT_EQ(feed_->stats().dropped_chunks, 0u);
  }
  void feed_copies(int from, int to, std::uint64_t scale = 1) {
    feed_copies(from, to, scale, [] {});
  }

  // A resource of channel "news" through get(), nullopt when 404.
  std::optional<std::string> body(const std::string& name, const std::string& query = "") {
    const auto r = packager_->get("news", name, query);
    if (!r) return std::nullopt;
    return r->body->str();
  }

  rte_mempool* pool_ = nullptr;
  std::vector<std::unique_ptr<dataplane::OttFeed>> feeds_;
  std::uint64_t mono_ns_ = 0;
  std::unique_ptr<HlsPackager> packager_;
  std::unique_ptr<HlsOrigin> origin_;
  dataplane::OttFeed* feed_ = nullptr;
  std::vector<dataplane::OttFeed*> also_;  // fed the same chunks as feed_ (renditions)

 private:
  unsigned n_mbufs_;
};

}  // namespace twincast::control::packager_test
