// The HLS packager's store: live window, DVR window by time and by memory budget,
// time-range (catch-up) VOD/EVENT playlists, event.m3u8, restarts.
//
// Real TS (the h264_aac.ts fixture, 6 s, GOP 1 s) goes through a real OttFeed (its own
// pool, the EAL --no-huge) into the packager, driven by poll_once() with injected clocks:
// the feed's clock is the test's, and the wall clock is kT0 + that, so a segment's
// PROGRAM-DATE-TIME is kT0 + the time of its first chunk (whole milliseconds). Copies of
// the file are chained with their clocks shifted, so the timeline is continuous. ffmpeg
// decodes a time-range playlist fetched through get().
//
// DVR on disk (ott.dvr_dir, a temp dir): memory holds the live window only, the rest is in
// <dir>/news/seg-<n>.ts (ciphertext when encrypting); ffmpeg plays event.m3u8 and a time
// range of on-disk segments through the real HlsOrigin over HTTP; eviction (hours, disk
// budget) deletes files; a channel directory removed or replaced mid-run, and writes
// refused (RLIMIT_FSIZE: EFBIG, as a full disk would refuse them, even for root) are
// counted, keep memory within the budget and crash nothing; reads racing eviction never
// serve a torn file; a rendition keeps its own window in memory and its own files. Failed
// writes are retried with later segments; a memory share smaller than one segment deletes
// nothing from disk; concurrent get()s of an on-disk segment share one buffer and reads
// over the disk-read cap are 404 and counted; a start deletes only the packager's own file
// names in a configured channel's directory, following no symlink.
//
// Numbers: a channel's first sequence number and key id are the wall clock's ms when it is
// made (kT0 + the fake clock here; seg(k) is its k-th segment). A restart (a new packager,
// the clock 1 ms on) numbers above the last run and serves none of its segment or key URLs
// and no ETag of it for other bytes; a channel dropped and added again numbers above its
// old segments even with the clock set back; HlsPackagerOptions::first_sequence fixes them.
#include <boost/json.hpp>
#include <gtest/gtest.h>
#include <rte_mempool.h>
#include <sys/resource.h>

#include <csignal>
#include <cmath>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "control/packager_fixture.hpp"
#include "dataplane/eal_harness.hpp"
#include "tests_common.hpp"
#include "twincast/control/hls_auth.hpp"
#include "twincast/control/hls_origin.hpp"
#include "twincast/control/hls_packager.hpp"
#include "twincast/mpegts/hls.hpp"

namespace twincast::control {
namespace {

namespace fs = std::filesystem;
namespace tt = twincast::test;
using namespace packager_test;

const auto* const g_env =
    ::testing::AddGlobalTestEnvironment(new tt::EalEnvironment("tchls_pk_", "control_hls_packager_test"));

class Packager : public PackagerTest {
 protected:
  void make(std::uint32_t window, std::uint32_t dvr_hours, std::uint32_t memory_mb, std::uint32_t segment_s = 2,
            bool encrypt = false) {
    config_.segment_seconds = segment_s;
    config_.window_segments = window;
    config_.dvr_hours = dvr_hours;
    config_.memory_mb = memory_mb;
    HlsPackagerOptions o = options();
    o.disk_read_cap_bytes = read_cap_;
    packager_ = std::make_unique<HlsPackager>(config_, std::move(o));
    feed_ = new_feed();
    PackagedChannel c{"news", "News", feed_};
    c.encrypt = encrypt;
    // The channel's numbers start at the wall clock's ms when it is made.
    first_ = static_cast<std::uint64_t>(kT0) + mono_ns_ / 1'000'000;
    packager_->set_channels({c});
  }

  std::optional<std::string> get(const std::string& name, const std::string& query = "") { return body(name, query); }

  // One copy of the file at `at_ms` on the timeline (copies kCopyMs apart are continuous;
  // more leaves a hole in the input, the clocks running on), poll_once() every 64 chunks
  // and at the end, `each_poll` after each.
  template <typename Fn>
  void feed_copy_at(std::int64_t at_ms, Fn each_poll) {
    const Source& src = source();
    const auto pkts = shifted(src.packets, at_ms);
    std::size_t chunks = 0;
    for (std::size_t i = 0; i < pkts.size(); i += dataplane::OttFeed::kChunkPackets) {
      const std::size_t n = std::min(dataplane::OttFeed::kChunkPackets, pkts.size() - i);
      const std::uint64_t ms = static_cast<std::uint64_t>(at_ms) + src.ms[i];
      mono_ns_ = std::max(mono_ns_, ms * 1'000'000);
      feed_->on_packets(0, std::span<const mpegts::TsPacket>(pkts.data() + i, n), ms * 1'000'000);
      if (++chunks % 64 == 0) {
        packager_->poll_once();
        each_poll();
      }
    }
    packager_->poll_once();
    each_poll();
  }

  // Two copies of the file fed from 0 (`at` moves past them), and the catch-up query for
  // the first four segments they made.
  std::string first_four_segments_range(std::int64_t& at) {
    for (int k = 0; k < 2; ++k, at += kCopyMs) feed_copy_at(at, [] {});
    const Playlist all = parse_playlist(*get("event.m3u8"));
    EXPECT_GE(all.entries.size(), 4u);
    if (all.entries.size() < 4) return {};
    return "start=" + epoch_s(all.entries.at(0).pdt_ms) + "&end=" + epoch_s(all.entries.at(3).pdt_ms);
  }

  // The name of the channel's segment `k` (counted from its first).
  [[nodiscard]] std::string seg(std::uint64_t k) const { return "seg-" + std::to_string(first_ + k) + ".ts"; }

  dataplane::OttConfig config_;
  std::uint64_t read_cap_ = 0;  // HlsPackagerOptions::disk_read_cap_bytes
  std::uint64_t first_ = 0;     // the channel's first sequence number
};

// Every listed segment in order, consecutive from MEDIA-SEQUENCE, each fetchable.
void expect_consistent(const Playlist& p, HlsPackager& pk) {
  ASSERT_TRUE(p.media_sequence.has_value());
  ASSERT_FALSE(p.entries.empty());
  for (std::size_t i = 0; i < p.entries.size(); ++i) {
    EXPECT_EQ(p.entries[i].sequence, *p.media_sequence + i);
    if (i > 0) {
      EXPECT_GT(p.entries[i].pdt_ms, p.entries[i - 1].pdt_ms);
    }
    EXPECT_TRUE(pk.get("news", "seg-" + std::to_string(p.entries[i].sequence) + ".ts", "").has_value())
        << p.entries[i].sequence;
  }
}

// --- tests ---

TEST_F(Packager, LiveWindowSlidesAndKeepsTwiceTheWindowPlusOneForLateFetches) {
  make(3, 0, 512);
  feed_copies(0, 4);  // ~24 s: 11 segments delivered (the 12th is still open)
  const auto st = packager_->channel_stats("news");
  ASSERT_TRUE(st);
  EXPECT_EQ(st->segments, 11u);
  EXPECT_EQ(st->held_segments, 7u);  // RFC 8216 6.2.2: 3 listed + 3 + 1
  EXPECT_EQ(st->evicted, 4u);
  const Playlist live = parse_playlist(*get("live.m3u8"));
  ASSERT_EQ(live.entries.size(), 3u);
  EXPECT_EQ(*live.media_sequence, first_ + 8);
  EXPECT_EQ(live.type, "");
  EXPECT_FALSE(live.end_list);
  expect_consistent(live, *packager_);
  EXPECT_TRUE(get(seg(4)).has_value()) << "slid out of the playlist, still held";
  EXPECT_FALSE(get(seg(3)).has_value()) << "evicted";
  // Unknown query parameters change nothing.
  EXPECT_EQ(*get("live.m3u8", "foo=1&bar"), *get("live.m3u8"));

  // event.m3u8: everything held, no PLAYLIST-TYPE (it slides with eviction), no ENDLIST.
  const Playlist ev = parse_playlist(*get("event.m3u8"));
  EXPECT_EQ(ev.type, "");
  EXPECT_FALSE(ev.end_list);
  ASSERT_EQ(ev.entries.size(), 7u);
  EXPECT_EQ(*ev.media_sequence, first_ + 4);
  expect_consistent(ev, *packager_);
  // PDT: kT0 + the time of the segment's first packet on the chained timeline.
  for (const Entry& e : ev.entries) {
    EXPECT_GE(e.pdt_ms, kT0 + 7'900);  // segment 4: the second of copy 1 (6.1 s + 2 s)
    EXPECT_LT(e.pdt_ms, kT0 + 4 * kCopyMs);
  }
  // Sliding: one more copy, three more segments, the window moves by three.
  feed_copies(4, 5);
  EXPECT_EQ(*parse_playlist(*get("live.m3u8")).media_sequence, first_ + 11);
  EXPECT_EQ(*parse_playlist(*get("event.m3u8")).media_sequence, first_ + 7);  // 14 made, 7 held
}

// RFC 8216 4.3.3.5: an EVENT playlist may only grow at its end (a player may keep its start
// for seeking). event.m3u8 loses its oldest segments as they are evicted, so it is a
// sliding live playlist over the DVR window, without PLAYLIST-TYPE.
TEST_F(Packager, TheDvrPlaylistThatLosesItsStartIsNoEventPlaylist) {
  make(3, 0, 512);
  feed_copies(0, 2);
  const Playlist before = parse_playlist(*get("event.m3u8"));
  feed_copies(2, 4);
  const Playlist after = parse_playlist(*get("event.m3u8"));
  ASSERT_GT(*after.media_sequence, *before.media_sequence) << "its start was evicted";
  EXPECT_NE(before.type, "EVENT");
  EXPECT_NE(after.type, "EVENT");
  EXPECT_FALSE(after.end_list);
  expect_consistent(after, *packager_);
}

TEST_F(Packager, DvrKeepsTheConfiguredHoursByProgramDateTime) {
  make(3, 1, 512);
  // Each 2 s segment spans 200 s of wall clock: 1 h is 18 segments, 10 copies make 29.
  feed_copies(0, 10, 100);
  const Playlist ev = parse_playlist(*get("event.m3u8"));
  ASSERT_GT(ev.entries.size(), 6u) << "more than the live window's 2 x 3";
  expect_consistent(ev, *packager_);
  const Entry& newest = ev.entries.back();
  const std::int64_t horizon = newest.pdt_ms + static_cast<std::int64_t>(newest.duration_s * 1000 + 0.5) - 3'600'000;
  EXPECT_GE(ev.entries.front().pdt_ms, horizon) << "an older segment is held";
  // The one before the oldest held started before the horizon (else it would still be held).
  const std::int64_t step = ev.entries[1].pdt_ms - ev.entries[0].pdt_ms;
  EXPECT_LT(ev.entries.front().pdt_ms - step, horizon);
  const auto st = packager_->channel_stats("news");
  EXPECT_EQ(st->held_segments, ev.entries.size());
  EXPECT_EQ(st->segments, 29u);
  EXPECT_EQ(st->evicted, 29u - ev.entries.size());
  EXPECT_LE(st->held_seconds, 3600.0 + 250);
  EXPECT_FALSE(get("seg-" + std::to_string(*ev.media_sequence - 1) + ".ts").has_value());
  // The live playlist is still the last 3.
  EXPECT_EQ(parse_playlist(*get("live.m3u8")).entries.size(), 3u);
}

TEST_F(Packager, MemoryBudgetWinsOverTheDvrHours) {
  make(3, 72, 1, 1);  // 1 MiB, 1 s segments of ~190 kB
  const std::uint64_t budget = 1u << 20;
  std::uint64_t peak = 0;
  feed_copies(0, 8, 1, [&] {
    const auto st = packager_->channel_stats("news");
    peak = std::max(peak, st->window_bytes);
  });
  const auto st = packager_->channel_stats("news");
  EXPECT_GT(st->window_bytes, budget / 2);
  EXPECT_LE(peak, budget) << "held bytes above the channel's share";
  EXPECT_GT(st->evicted, 30u);
  EXPECT_EQ(st->held_segments + st->evicted, st->segments);
  // What is held is all listed and fetchable; what went first is gone.
  const Playlist ev = parse_playlist(*get("event.m3u8"));
  EXPECT_EQ(ev.entries.size(), st->held_segments);
  expect_consistent(ev, *packager_);
  EXPECT_FALSE(get(seg(0)).has_value());

  // Two channels share the budget: each gets half.
  auto* second = new_feed();
  packager_->set_channels({PackagedChannel{"news", "News", feed_}, PackagedChannel{"sport", "Sport", second}});
  peak = 0;
  feed_copies(8, 12, 1, [&] { peak = std::max(peak, packager_->channel_stats("news")->window_bytes); });
  EXPECT_LE(peak, budget) << "the shrink happens at the next segment";
  EXPECT_LE(packager_->channel_stats("news")->window_bytes, budget / 2);
}

// memory_mb is shared evenly by the channels: one added by a reload takes its share from
// the others at once, even from one whose input is down (it stores no segment to evict by).
TEST_F(Packager, AChannelAddedTakesItsMemoryShareFromAStalledOne) {
  make(3, 72, 1, 1);  // 1 MiB, 1 s segments of ~190 kB
  const std::uint64_t budget = 1u << 20;
  feed_copies(0, 3);
  ASSERT_GT(packager_->channel_stats("news")->window_bytes, budget * 3 / 4) << "news fills the budget alone";
  dataplane::OttFeed* news = feed_;
  feed_ = new_feed();
  packager_->set_channels({PackagedChannel{"news", "News", news}, PackagedChannel{"sports", "Sports", feed_}});
  EXPECT_LE(packager_->channel_stats("news")->window_bytes, budget / 2);
  feed_copies(3, 6);
  EXPECT_GT(packager_->channel_stats("sports")->window_bytes, budget / 4);
  EXPECT_LE(packager_->channel_stats("news")->window_bytes + packager_->channel_stats("sports")->window_bytes, budget);
  const Playlist ev = parse_playlist(*get("event.m3u8"));
  expect_consistent(ev, *packager_);
  EXPECT_EQ(ev.entries.size(), packager_->channel_stats("news")->held_segments);
}

// A CDN revalidates the live playlist with its ETag (If-None-Match): a 304 must mean the
// same bytes. A reload that takes a stalled channel's memory share evicts segments it lists
// and renders it again with no new segment: the new text needs a new ETag, or the CDN keeps
// the old one listing segments that are now 404 for as long as the input is down.
TEST_F(Packager, AReloadThatShortensTheLivePlaylistChangesItsEtag) {
  make(3, 72, 1, 1);  // 1 MiB, 1 s segments of ~190 kB
  feed_copies(0, 3);
  const auto before = packager_->get("news", "live.m3u8", "");
  ASSERT_TRUE(before);
  // Four channels: a quarter of the budget, less than the three listed segments.
  packager_->set_channels({PackagedChannel{"news", "News", feed_}, PackagedChannel{"a", "A", new_feed()},
                           PackagedChannel{"b", "B", new_feed()}, PackagedChannel{"c", "C", new_feed()}});
  const auto after = packager_->get("news", "live.m3u8", "");
  ASSERT_TRUE(after);
  ASSERT_NE(after->body->str(), before->body->str()) << "the shrink did not change the live playlist";
  EXPECT_NE(after->etag, before->etag) << before->body->str() << "\n---\n" << after->body->str();
  expect_consistent(parse_playlist(after->body->str()), *packager_);
}

TEST_F(Packager, TimeRangesGiveVodOncePastAndEventWhileOpen) {
  make(3, 1, 512);
  feed_copies(0, 5);  // ~30.5 s: 14 segments delivered, all held (1 h)
  const Playlist all = parse_playlist(*get("event.m3u8"));
  ASSERT_EQ(all.entries.size(), 14u);
  const auto pdt = [&](std::size_t i) { return all.entries.at(i).pdt_ms; };

  // [pdt 3, pdt 7): segments 3..6, over (segment 7 exists): VOD with ENDLIST. The same in
  // every time syntax, with ':' sent as is or as %3A.
  const std::string iso3 = mpegts::hls::format_date_time(pdt(3)), iso7 = mpegts::hls::format_date_time(pdt(7));
  std::string enc3 = iso3;
  for (std::size_t at; (at = enc3.find(':')) != std::string::npos;) enc3.replace(at, 1, "%3A");
  const std::string whole3 = iso3.substr(0, 19) + "Z";  // whole seconds: just before pdt 3
  ASSERT_LT(iso_ms(whole3), pdt(3));
  ASSERT_GT(iso_ms(whole3), pdt(2)) << "the fixture's segments are 2 s apart";
  for (const std::string& q : {"start=" + iso3 + "&end=" + iso7, "start=" + enc3 + "&end=" + iso7,
                              "start=" + epoch_s(pdt(3)) + "&end=" + epoch_s(pdt(7)),
                              "start=" + std::to_string(pdt(3) / 1000) + "&end=" + epoch_s(pdt(7)),
                              "x=1&start=" + iso3.substr(0, 19) + "+00:00&end=" + iso7, "end=" + iso7 + "&start=" + whole3}) {
    SCOPED_TRACE(q);
    const auto text = get("live.m3u8", q);
    ASSERT_TRUE(text);
    const Playlist p = parse_playlist(*text);
    EXPECT_EQ(p.type, "VOD");
    EXPECT_TRUE(p.end_list);
    ASSERT_EQ(p.entries.size(), 4u);
    EXPECT_EQ(*p.media_sequence, first_ + 3);
    EXPECT_EQ(*p.discontinuity_sequence, first_) << "counted from the channel's first number";
    EXPECT_EQ(p.entries.front().pdt_ms, pdt(3));
    EXPECT_EQ(p.entries.back().pdt_ms, pdt(6));
    expect_consistent(p, *packager_);
  }
  // End one ms after pdt 7 takes segment 7 too; start one ms after pdt 3 leaves segment 3 out.
  EXPECT_EQ(parse_playlist(*get("live.m3u8", "start=" + epoch_s(pdt(3) + 1) + "&end=" + epoch_s(pdt(7) + 1))).entries.size(), 4u);
  EXPECT_EQ(*parse_playlist(*get("live.m3u8", "start=" + epoch_s(pdt(3) + 1) + "&end=" + epoch_s(pdt(7) + 1))).media_sequence, first_ + 4);
  // No start: from the oldest held.
  EXPECT_EQ(*parse_playlist(*get("live.m3u8", "end=" + iso7)).media_sequence, first_);

  // The master with the query points at that playlist.
  const auto master = get("index.m3u8", "start=" + enc3 + "&end=" + epoch_s(pdt(7)));
  ASSERT_TRUE(master);
  const std::string uri = "live.m3u8?start=" + iso3 + "&end=" + iso7;
  EXPECT_NE(master->find("\n" + uri + "\n"), std::string::npos) << *master;
  EXPECT_NE(master->find("#EXT-X-STREAM-INF:BANDWIDTH="), std::string::npos) << *master;
  EXPECT_EQ(*get("live.m3u8", uri.substr(10)), *get("live.m3u8", "start=" + iso3 + "&end=" + iso7));
  EXPECT_NE(get("index.m3u8")->find("\nlive.m3u8\n"), std::string::npos);

  // An open range (end in the future): EVENT from start, growing, no ENDLIST until it is over.
  const std::int64_t end = kT0 + 38'000;
  const std::string open_q = "start=" + epoch_s(pdt(10)) + "&end=" + epoch_s(end);
  Playlist open = parse_playlist(*get("live.m3u8", open_q));
  EXPECT_EQ(open.type, "EVENT");
  EXPECT_FALSE(open.end_list);
  EXPECT_EQ(*open.media_sequence, first_ + 10);
  EXPECT_EQ(open.entries.size(), 4u);
  const Playlist no_end = parse_playlist(*get("live.m3u8", "start=" + epoch_s(pdt(10))));
  EXPECT_EQ(no_end.type, "EVENT");
  EXPECT_EQ(no_end.entries.size(), 4u);
  feed_copies(5, 6);  // to ~36.6 s: still open
  open = parse_playlist(*get("live.m3u8", open_q));
  EXPECT_EQ(open.type, "EVENT");
  EXPECT_EQ(open.entries.size(), 7u);
  feed_copies(6, 8);  // to ~48.8 s: a segment starts past 38 s
  open = parse_playlist(*get("live.m3u8", open_q));
  EXPECT_EQ(open.type, "VOD");
  EXPECT_TRUE(open.end_list);
  EXPECT_EQ(*open.media_sequence, first_ + 10);
  EXPECT_LT(open.entries.back().pdt_ms, end);
  EXPECT_GE(open.entries.back().pdt_ms + 2'000, end - 1);
  expect_consistent(open, *packager_);
}

TEST_F(Packager, BadOrEmptyRangesAre404) {
  make(3, 1, 512);
  feed_copies(0, 3);
  const Playlist all = parse_playlist(*get("event.m3u8"));
  ASSERT_GE(all.entries.size(), 5u);
  const std::string s = epoch_s(all.entries[1].pdt_ms), e = epoch_s(all.entries[4].pdt_ms);
  ASSERT_TRUE(get("live.m3u8", "start=" + s + "&end=" + e));
  for (const std::string& q : std::vector<std::string>{"start=" + e + "&end=" + s, "start=" + s + "&end=" + s, "start=", "start", "start=abc", "start=12a",
        "start=1795642800.", "start=1795642800.1234567890", "start=-5", "start=2026-13-01T00:00:00Z",
        "start=2026-02-29T00:00:00Z", "start=2026-11-25T24:00:00Z", "start=2026-11-25T21:40:00",
        "start=2026-11-25T21:40:00+01:00", "start=2026-11-25 21:40:00Z", "start=2026-11-25T21:40:00Z%",
        "start=%ZZ", "start=" + s + "&end=nope",
        // Nothing held in the range: before the first segment, after the newest.
        "start=1000&end=2000", "start=" + epoch_s(kT0 + 3'600'000)}) {
    EXPECT_FALSE(get("live.m3u8", q)) << q;
    EXPECT_FALSE(get("index.m3u8", q)) << q;
  }
  // A valid ISO time with a fraction and a leap day.
  EXPECT_FALSE(get("live.m3u8", "start=2028-02-29T00:00:00.5Z")) << "valid, but nothing held then";
  EXPECT_TRUE(get("live.m3u8", "start=2026-11-25T21:39:59.5Z&end=" + e));
}

TEST_F(Packager, ARestartedChannelContinuesTheSequenceAfterADiscontinuity) {
  make(3, 1, 512);
  feed_copies(0, 2);  // 5 segments delivered (0..4), the 6th lost with the old segmenter
  ASSERT_EQ(packager_->channel_stats("news")->segments, 5u);
  // A reload restarts the channel: a new feed for the same id.
  packager_->detach({"news"});
  feed_ = new_feed();
  packager_->set_channels({PackagedChannel{"news", "News", feed_}});
  feed_copies(3, 5);  // its own timeline again (a jump of 6 s: the restart's gap)
  const Playlist all = parse_playlist(*get("event.m3u8"));
  expect_consistent(all, *packager_);
  ASSERT_GE(all.entries.size(), 9u);
  EXPECT_EQ(*all.media_sequence, first_);
  EXPECT_EQ(*all.discontinuity_sequence, first_);
  for (std::size_t i = 0; i < all.entries.size(); ++i) EXPECT_EQ(all.entries[i].discontinuity, i == 5) << i;
  EXPECT_EQ(all.entries[5].sequence, first_ + 5) << "numbers go on";
  // A range from the restart's segment: the channel's DISCONTINUITY-SEQUENCE and the tag on
  // its first entry; one from the segment after it: one more (RFC 8216 6.2.2).
  const Playlist at = parse_playlist(*get("live.m3u8", "start=" + epoch_s(all.entries[5].pdt_ms)));
  EXPECT_EQ(*at.media_sequence, first_ + 5);
  EXPECT_EQ(*at.discontinuity_sequence, first_);
  EXPECT_TRUE(at.entries.front().discontinuity);
  const Playlist after = parse_playlist(*get("live.m3u8", "start=" + epoch_s(all.entries[6].pdt_ms)));
  EXPECT_EQ(*after.media_sequence, first_ + 6);
  EXPECT_EQ(*after.discontinuity_sequence, first_ + 1);
  EXPECT_FALSE(after.entries.front().discontinuity);
  const Playlist before = parse_playlist(*get("live.m3u8", "start=" + epoch_s(all.entries[1].pdt_ms) + "&end=" +
                                                     epoch_s(all.entries[4].pdt_ms + 1)));
  EXPECT_EQ(before.type, "VOD");
  EXPECT_EQ(*before.discontinuity_sequence, first_);
  EXPECT_EQ(before.entries.size(), 4u);
  for (const Entry& e : before.entries) EXPECT_FALSE(e.discontinuity);
  // The live playlist carries the tag too while it is listed.
  const Playlist live = parse_playlist(*get("live.m3u8"));
  EXPECT_EQ(packager_->channel_stats("news")->discontinuities, 1u);
  EXPECT_EQ(live.entries.size(), 3u);
}

// The packager falls behind for a moment: its feed's ring fills and chunks are dropped
// (never waited for). The segment that would span the hole is closed at it and the next
// one carries EXT-X-DISCONTINUITY; no segment splices across the missing packets.
TEST_F(Packager, ChunksDroppedOnAFullFeedAreADiscontinuityNotASplice) {
  make(50, 1, 512);
  packager_->detach({"news"});
  feed_ = new_feed(64);  // 63 chunks
  packager_->set_channels({PackagedChannel{"news", "News", feed_}});
  const Source& src = source();
  std::size_t chunks = 0;
  std::size_t stall_from = 0;  // 0: not yet
  for (int k = 0; k < 3; ++k) {
    const auto pkts = shifted(src.packets, k * kCopyMs);
    for (std::size_t i = 0; i < pkts.size(); i += dataplane::OttFeed::kChunkPackets) {
      const std::size_t n = std::min(dataplane::OttFeed::kChunkPackets, pkts.size() - i);
      const std::uint64_t ms = static_cast<std::uint64_t>(k * kCopyMs) + src.ms[i];
      mono_ns_ = std::max(mono_ns_, ms * 1'000'000);
      feed_->on_packets(0, std::span<const mpegts::TsPacket>(pkts.data() + i, n), ms * 1'000'000);
      ++chunks;
      // Mid-way through the second copy the packager misses polls for 100 chunks.
      if (k == 1 && i >= pkts.size() / 2 && stall_from == 0) stall_from = chunks;
      const bool stalled = stall_from != 0 && chunks < stall_from + 100;
      if (!stalled && chunks % 16 == 0) packager_->poll_once();
    }
  }
  packager_->poll_once();
  const auto st = feed_->stats();
  ASSERT_GT(st.dropped_chunks, 0u);
  ASSERT_LT(st.dropped_chunks, 100u);
  EXPECT_EQ(st.discontinuities, 0u);  // no input switch
  const Playlist all = parse_playlist(*get("event.m3u8"));
  expect_consistent(all, *packager_);
  ASSERT_GE(all.entries.size(), 7u);
  std::size_t tags = 0;
  for (const Entry& e : all.entries) tags += e.discontinuity ? 1 : 0;
  EXPECT_EQ(tags, 1u) << st.dropped_chunks << " chunks dropped, spliced over without a discontinuity";
  EXPECT_EQ(packager_->channel_stats("news")->discontinuities, 1u);
}

// The input stops for 8.5 s while its encoder runs on (an outage upstream): the clocks
// step forward by less than the 10 s jump limit, so no discontinuity, and the segment open
// across the hole spans more than 10 s of PTS. The live playlist must go on after it.
TEST_F(Packager, AnInputHoleUnderTheJumpLimitDoesNotFreezeTheLivePlaylist) {
  make(3, 1, 512);
  std::int64_t at = 0;
  for (int k = 0; k < 6; ++k) {  // copies 0..2, the hole, copies 3..5 (18.3 s)
    feed_copy_at(at, [] {});
    at += kCopyMs + (k == 2 ? 8'500 : 0);
  }
  const auto st = packager_->channel_stats("news");
  ASSERT_TRUE(st);
  EXPECT_EQ(st->discontinuities, 0u);
  EXPECT_GE(st->segments, 15u) << "about 2 s segments before and after the hole";
  const Playlist live = parse_playlist(*get("live.m3u8"));
  ASSERT_FALSE(live.entries.empty());
  // The newest listed segment starts in the last copy (at 3 x 6.1 + 8.5 + 3 x 6.1 s).
  EXPECT_GE(live.entries.back().pdt_ms, kT0 + 3 * kCopyMs + 8'500 + 2 * kCopyMs) << *get("live.m3u8");
  expect_consistent(live, *packager_);
}

// RFC 8216 4.3.3.1 makes EXT-X-TARGETDURATION at least every EXTINF (rounded), and 6.2.1
// lets a live playlist change only by adding segments at its end and removing them from
// its start: a target raised for a long segment (here one across a 3 s hole in the input)
// stays raised after that segment left the window.
TEST_F(Packager, TheLiveTargetDurationNeverGoesBackDown) {
  make(3, 1, 512);
  std::vector<long> targets;  // of each new live.m3u8
  std::string last;
  const auto each = [&] {
    const auto text = get("live.m3u8");
    if (!text || *text == last) return;
    last = *text;
    long target = 0;
    std::istringstream in(*text);
    for (std::string l; std::getline(in, l);) {
      if (l.rfind("#EXT-X-TARGETDURATION:", 0) == 0) target = std::stol(l.substr(22));
      if (l.rfind("#EXTINF:", 0) == 0) {
        EXPECT_LE(std::lround(std::stod(l.substr(8))), target) << *text;
      }
    }
    targets.push_back(target);
  };
  std::int64_t at = 0;
  for (int k = 0; k < 6; ++k) {
    feed_copy_at(at, each);
    at += kCopyMs + (k == 2 ? 3'000 : 0);
  }
  ASSERT_GE(targets.size(), 10u);
  EXPECT_EQ(targets.front(), 2);
  EXPECT_EQ(targets.back(), 5) << "the 5.1 s segment across the hole raised it";
  for (std::size_t i = 1; i < targets.size(); ++i) EXPECT_GE(targets[i], targets[i - 1]) << "playlist " << i;
  // The DVR playlists of the track agree with it.
  const auto target_of = [](const std::string& text) {
    const auto tag = text.find("#EXT-X-TARGETDURATION:");
    return std::stol(text.substr(tag + 22));
  };
  EXPECT_EQ(target_of(*get("event.m3u8")), 5);
}

// A catch-up playlist's strong ETag stands for its bytes (a 304, an If-Range splice): the
// target duration it carries is the track's, which a later long segment raises with the
// range's segments unchanged, so the ETag must change with it.
TEST_F(Packager, ACatchUpPlaylistsEtagChangesWithItsTargetDuration) {
  make(3, 1, 512);
  std::int64_t at = 0;
  const std::string q = first_four_segments_range(at);
  ASSERT_FALSE(q.empty());
  const auto before = packager_->get("news", "live.m3u8", q);
  ASSERT_TRUE(before);
  // The 3 s hole after copy 2: a 5.1 s segment raises the target to 5.
  for (int k = 2; k < 5; ++k) {
    feed_copy_at(at, [] {});
    at += kCopyMs + (k == 2 ? 3'000 : 0);
  }
  const auto after = packager_->get("news", "live.m3u8", q);
  ASSERT_TRUE(after);
  ASSERT_NE(after->body->str(), before->body->str()) << "the target was not raised";
  EXPECT_NE(after->etag, before->etag) << before->body->str() << "\n---\n" << after->body->str();
}

// The same for a catch-up master: its text is the live master's (bandwidths measured on
// the newest segments) cut to the range, so the range's numbers alone do not name it.
TEST_F(Packager, ACatchUpMastersEtagChangesWithItsText) {
  make(3, 1, 512);
  std::int64_t at = 0;
  const std::string q = first_four_segments_range(at);
  ASSERT_FALSE(q.empty());
  const auto before = packager_->get("news", "index.m3u8", q);
  ASSERT_TRUE(before);
  std::map<std::string, std::string> seen{{before->etag, before->body->str()}};
  for (int k = 2; k < 6; ++k, at += kCopyMs) {
    feed_copy_at(at, [&] {
      const auto r = packager_->get("news", "index.m3u8", q);
      ASSERT_TRUE(r);
      const auto it = seen.emplace(r->etag, r->body->str()).first;
      EXPECT_EQ(it->second, r->body->str()) << "one strong ETag " << r->etag << " for two texts";
    });
  }
}

// RFC 8216 6.2.4: every Media Playlist of every Variant Stream MUST have the same target
// duration. The channel's own input has a 3 s hole that its rendition "lo" does not (two
// inputs): the long segment across it raises live.m3u8's target, and live-lo.m3u8 (and
// every playlist of the channel) must carry the same value.
TEST_F(Packager, EveryVariantCarriesTheSameTargetDuration) {
  make(3, 1, 512);
  auto* lo = new_feed();
  PackagedChannel c{"news", "News", feed_};
  c.renditions.push_back(PackagedRendition{"lo", lo});
  packager_->set_channels({c});
  const Source& src = source();
  const auto target_of = [this](const std::string& name) {
    const auto text = get(name);
    if (!text) return -1L;
    const auto tag = text->find("#EXT-X-TARGETDURATION:");
    return std::stol(text->substr(tag + 22));
  };
  std::size_t chunks = 0;
  for (int k = 0; k < 5; ++k) {
    const auto pkts = shifted(src.packets, k * kCopyMs);
    for (std::size_t i = 0; i < pkts.size(); i += dataplane::OttFeed::kChunkPackets) {
      const std::size_t n = std::min(dataplane::OttFeed::kChunkPackets, pkts.size() - i);
      const std::uint64_t ms = static_cast<std::uint64_t>(k * kCopyMs) + src.ms[i];
      mono_ns_ = std::max(mono_ns_, ms * 1'000'000);
      const std::span<const mpegts::TsPacket> chunk(pkts.data() + i, n);
      // Copy 2, 2.2 s to 5.2 s in: lost on the channel's own input only.
      const bool hole = k == 2 && src.ms[i] >= src.ms[0] + 2'200 && src.ms[i] < src.ms[0] + 5'200;
      if (!hole) feed_->on_packets(0, chunk, ms * 1'000'000);
      lo->on_packets(0, chunk, ms * 1'000'000);
      if (++chunks % 64 == 0) {
        packager_->poll_once();
        const long a = target_of("live.m3u8"), b = target_of("live-lo.m3u8");
        if (a > 0 && b > 0) {
          EXPECT_EQ(a, b) << "at " << ms << " ms\n" << *get("live.m3u8") << "\n" << *get("live-lo.m3u8");
        }
      }
    }
  }
  packager_->poll_once();
  EXPECT_GE(target_of("live.m3u8"), 4) << "the segment across the hole raised it";
  for (const char* name : {"live-lo.m3u8", "event.m3u8", "event-lo.m3u8"})
    EXPECT_EQ(target_of(name), target_of("live.m3u8")) << name << "\n" << *get(name);
}

// RFC 8216 4.3.5.1: EXT-X-INDEPENDENT-SEGMENTS in a master playlist applies to every
// segment of every media playlist it lists. A source whose GOP (10 s) is far longer than
// the segments (1 s: cuts forced every 4 s) gives segments that start without a key frame;
// live.m3u8 leaves the tag out, and so must the master, or a player that trusts it starts
// or switches on such a segment and shows garbage until the next key frame.
TEST_F(Packager, TheMasterClaimsIndependentSegmentsOnlyWhenEverySegmentIs) {
  const fs::path dir = tt::temp_dir("hls_long_gop");
  const auto made = tt::run(
      "ffmpeg -hide_banner -loglevel error -y -f lavfi -i testsrc2=size=320x180:rate=25:duration=12 -c:v libx264 "
      "-preset veryfast -g 250 -keyint_min 250 -sc_threshold 0 -pix_fmt yuv420p -f mpegts " +
      tt::shell_quote((dir / "gop.ts").string()) + " 2>&1");
  ASSERT_EQ(made.exit_code, 0) << made.out;
  const auto pkts = tt::read_packets(dir / "gop.ts");
  const auto times = mpegts::file_times(pkts).ns;
  make(20, 1, 512, 1);
  for (std::size_t i = 0; i < pkts.size(); i += dataplane::OttFeed::kChunkPackets) {
    const std::size_t n = std::min(dataplane::OttFeed::kChunkPackets, pkts.size() - i);
    mono_ns_ = std::max(mono_ns_, times[i]);
    feed_->on_packets(0, std::span<const mpegts::TsPacket>(pkts.data() + i, n), times[i]);
    if (i % (64 * dataplane::OttFeed::kChunkPackets) == 0) packager_->poll_once();
  }
  packager_->poll_once();
  const auto live = get("live.m3u8");
  ASSERT_TRUE(live);
  ASSERT_EQ(live->find("#EXT-X-INDEPENDENT-SEGMENTS"), std::string::npos) << "forced cuts are listed\n" << *live;
  const auto master = get("index.m3u8");
  ASSERT_TRUE(master);
  EXPECT_EQ(master->find("#EXT-X-INDEPENDENT-SEGMENTS"), std::string::npos) << *master;
  fs::remove_all(dir);
}

// RFC 8216 6.2.2: a live playlist may not lose a segment from its start if that leaves it
// shorter than three target durations (hls.js and Safari start 3 target durations from its
// end). A target raised by a long segment (the 5.1 s one across a 3 s hole in the input)
// with window_segments 3 needs more than the last 3 ~2 s segments; every listed one stays
// fetchable.
TEST_F(Packager, TheLivePlaylistLastsThreeTargetDurationsOnceItSlides) {
  make(3, 1, 512);
  std::string last;
  std::size_t checked = 0;
  const auto each = [&] {
    const auto text = get("live.m3u8");
    if (!text || *text == last) return;
    last = *text;
    const Playlist p = parse_playlist(*text);
    if (p.entries.empty() || *p.media_sequence == first_) return;  // nothing removed yet
    const auto tag = text->find("#EXT-X-TARGETDURATION:");
    const long target = std::stol(text->substr(tag + 22));
    double total = 0;
    for (const Entry& e : p.entries) total += e.duration_s;
    EXPECT_GE(total + 1e-9, 3.0 * static_cast<double>(target)) << *text;
    expect_consistent(p, *packager_);
    ++checked;
  };
  std::int64_t at = 0;
  for (int k = 0; k < 6; ++k) {
    feed_copy_at(at, each);
    at += kCopyMs + (k == 2 ? 3'000 : 0);
  }
  EXPECT_GE(checked, 8u);
}

// A channel with renditions (aligned cuts) restarted by a reload, whose input switches
// within the restarted segmenter's first slot (the partial one that is not published):
// one EXT-X-DISCONTINUITY marks both, and every playlist's DISCONTINUITY-SEQUENCE counts
// it once (RFC 8216 6.2.2), as a range starting at any held segment shows.
TEST_F(Packager, ARestartedAbrTrackCountsASwitchInItsFirstSlotOnce) {
  make(3, 1, 512);
  auto* lo = new_feed();
  PackagedChannel c{"news", "News", feed_};
  c.renditions.push_back(PackagedRendition{"lo", lo});
  packager_->set_channels({c});
  feed_copies(0, 2);
  packager_->detach({"news"});  // a reload restarts the channel's own track
  feed_ = new_feed();
  c.feed = feed_;
  packager_->set_channels({c});
  // Copy 2 on the new feed with an input switch 0.5 s in, then copies 3 and 4.
  const Source& src = source();
  const auto pkts = shifted(src.packets, 2 * kCopyMs);
  bool switched = false;
  for (std::size_t i = 0; i < pkts.size(); i += dataplane::OttFeed::kChunkPackets) {
    const std::size_t n = std::min(dataplane::OttFeed::kChunkPackets, pkts.size() - i);
    const std::uint64_t ms = static_cast<std::uint64_t>(2 * kCopyMs) + src.ms[i];
    mono_ns_ = std::max(mono_ns_, ms * 1'000'000);
    if (!switched && src.ms[i] >= src.ms[0] + 500u) {
      feed_->on_discontinuity(0);
      switched = true;
    }
    feed_->on_packets(0, std::span<const mpegts::TsPacket>(pkts.data() + i, n), ms * 1'000'000);
    if (i % (64 * dataplane::OttFeed::kChunkPackets) == 0) packager_->poll_once();
  }
  packager_->poll_once();
  feed_copies(3, 5);
  const Playlist all = parse_playlist(*get("event.m3u8"));
  expect_consistent(all, *packager_);
  ASSERT_GE(all.entries.size(), 8u);
  std::uint64_t tags = 0;
  for (std::size_t i = 0; i < all.entries.size(); ++i) {
    const Playlist from = parse_playlist(*get("live.m3u8", "start=" + epoch_s(all.entries[i].pdt_ms)));
    ASSERT_EQ(*from.media_sequence, all.entries[i].sequence);
    EXPECT_EQ(*from.discontinuity_sequence, *all.discontinuity_sequence + tags)
        << "a playlist starting at entry " << i << " of\n" << *get("event.m3u8");
    tags += all.entries[i].discontinuity ? 1u : 0u;
  }
  EXPECT_GE(tags, 1u);
  EXPECT_EQ(last_discontinuity_sequence(parse_playlist(*get("live.m3u8"))), *all.discontinuity_sequence + tags);
}

// RFC 8216 6.2.4: matching content in variant streams MUST have matching discontinuity
// sequence numbers (hls.js keys its timestamp offsets by them). A rendition added by a
// reload after the channel's input switched (both inputs of the pair, "lo" too) counts
// the switch as the channel's tracks do, though it never saw it.
TEST_F(Packager, ARenditionAddedLaterCountsTheChannelsDiscontinuities) {
  make(3, 1, 512);
  PackagedChannel c = news_with_rendition_lo();
  feed_copies(0, 2);
  feed_->on_discontinuity(0);
  for (auto* f : also_) f->on_discontinuity(0);
  feed_copies(2, 4);
  auto* lo2 = new_feed();
  also_.push_back(lo2);
  c.renditions.push_back(PackagedRendition{"lo2", lo2});
  packager_->set_channels({c});
  feed_copies(4, 7);
  // Each listed segment's number -> its discontinuity sequence number.
  const auto numbers = [](const Playlist& p) {
    std::map<std::uint64_t, std::uint64_t> out;
    std::uint64_t dsn = p.discontinuity_sequence.value_or(0);
    for (const Entry& e : p.entries) {
      dsn += e.discontinuity ? 1 : 0;
      out[e.sequence] = dsn;
    }
    return out;
  };
  const auto hi = numbers(parse_playlist(*get("event.m3u8")));
  ASSERT_GE(packager_->channel_stats("news")->discontinuities, 1u);
  std::size_t common = 0;
  for (const char* name : {"event-lo.m3u8", "event-lo2.m3u8"}) {
    const auto text = get(name);
    ASSERT_TRUE(text) << name;
    for (const auto& [sequence, dsn] : numbers(parse_playlist(*text))) {
      const auto it = hi.find(sequence);
      if (it == hi.end()) continue;
      EXPECT_EQ(dsn, it->second) << name << ": segment " << sequence << "\n" << *text << "\n" << *get("event.m3u8");
      ++common;
    }
  }
  EXPECT_GE(common, 8u);
}

// A reload that drops a rendition changes the master playlist at once; its ETag must change
// with it, or a CDN or player revalidating gets a 304 for the old text, whose variant is
// now 404 (until the next segment; for as long as the channel is stalled).
TEST_F(Packager, TheMastersEtagChangesWhenAReloadChangesItsVariants) {
  make(3, 1, 512);
  PackagedChannel c = news_with_rendition_lo();
  feed_copies(0, 2);
  const auto before = packager_->get("news", "index.m3u8", "");
  ASSERT_TRUE(before);
  ASSERT_NE(before->body->str().find("live-lo.m3u8"), std::string::npos) << before->body->str();
  packager_->detach({rendition_channel_id("news", "lo")});
  c.renditions.clear();
  packager_->set_channels({c});
  const auto after = packager_->get("news", "index.m3u8", "");
  ASSERT_TRUE(after);
  ASSERT_EQ(after->body->str().find("live-lo.m3u8"), std::string::npos) << after->body->str();
  EXPECT_NE(after->etag, before->etag) << "one strong ETag for two texts";
}

// /channels.json is what the web page reads: a channel name saved in Latin-1 (yaml-cpp
// passes the bytes through) went out as is, which is not JSON (RFC 8259: UTF-8), so the
// page showed no channel at all, and the origin's re-parse to mark signed channels failed.
TEST_F(Packager, ChannelsJsonIsValidUtf8ForANameThatIsNot) {
  make(3, 1, 512);
  packager_->set_channels({PackagedChannel{"news", "Caf\xe9 <b>\xff", feed_}});
  const std::string text = packager_->channels_json();
  boost::system::error_code ec;
  const boost::json::value v = boost::json::parse(text, ec);
  ASSERT_FALSE(ec) << ec.message() << ": " << text;
  EXPECT_EQ(v.as_array().at(0).as_object().at("name").as_string(), "Caf\xEF\xBF\xBD <b>\xEF\xBF\xBD");
}

TEST_F(Packager, FfmpegDecodesATimeRangeFetchedThroughGet) {
  make(3, 1, 512);
  feed_copies(0, 4);
  const Playlist all = parse_playlist(*get("event.m3u8"));
  ASSERT_GE(all.entries.size(), 10u);
  const std::string q = "start=" + epoch_s(all.entries[2].pdt_ms) + "&end=" + epoch_s(all.entries[9].pdt_ms);
  const auto text = get("live.m3u8", q);
  ASSERT_TRUE(text);
  const Playlist p = parse_playlist(*text);
  ASSERT_EQ(p.type, "VOD");
  ASSERT_EQ(p.entries.size(), 7u);  // across two joins of the copies
  const fs::path dir = tt::temp_dir("hls_packager_range");
  tt::write_file(dir / "range.m3u8", std::vector<std::uint8_t>(text->begin(), text->end()));
  for (const Entry& e : p.entries) {
    const std::string name = "seg-" + std::to_string(e.sequence) + ".ts";
    const auto seg = packager_->get("news", name, "");
    ASSERT_TRUE(seg);
    EXPECT_EQ(seg->kind, HlsResource::Kind::kSegment);
    tt::write_file(dir / name, std::vector<std::uint8_t>(seg->body->begin(), seg->body->end()));
  }
  const auto dec = tt::run("ffmpeg -nostdin -v error -i " + tt::shell_quote((dir / "range.m3u8").string()) + " -f null - 2>&1");
  EXPECT_EQ(dec.exit_code, 0) << dec.out;
  EXPECT_EQ(dec.out, "");
  // Every video frame of the 7 segments comes back (2 s each at 25 fps).
  const auto frames = tt::run("ffprobe -v error -select_streams v:0 -count_frames -show_entries stream=nb_read_frames "
                              "-of csv=p=0 " + tt::shell_quote((dir / "range.m3u8").string()) + " 2>&1");
  EXPECT_EQ(frames.out.substr(0, 4), "350\n") << frames.out;
  fs::remove_all(dir);
}

// --- DVR on disk (ott.dvr_dir) ---

struct DiskFiles {
  std::uint64_t bytes = 0;
  std::vector<std::uint64_t> sequences;  // of the seg-<n>.ts files, sorted
  std::vector<std::string> others;       // anything else (a .tmp left over...)
};

DiskFiles files_in(const fs::path& dir) {
  DiskFiles f;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.rfind("seg-", 0) != 0 || !name.ends_with(".ts") || name.find(".tmp") != std::string::npos) {
      f.others.push_back(name);
      continue;
    }
    std::error_code e;
    f.bytes += fs::file_size(it->path(), e);
    f.sequences.push_back(std::stoull(name.substr(4)));
  }
  std::sort(f.sequences.begin(), f.sequences.end());
  return f;
}

std::string file_text(const fs::path& p) {
  const auto b = tt::read_file(p);
  return {b.begin(), b.end()};
}

// Every packet of `b` starts with the sync byte.
bool is_ts(const std::string& b) {
  if (b.empty() || b.size() % 188 != 0) return false;
  for (std::size_t i = 0; i < b.size(); i += 188)
    if (static_cast<std::uint8_t>(b[i]) != 0x47) return false;
  return true;
}

class DvrDisk : public Packager {
 protected:
  void SetUp() override {
    Packager::SetUp();
    dir_ = tt::temp_dir("hls_dvr_disk");
    config_.dvr_dir = dir_.string();
  }
  void TearDown() override {
    Packager::TearDown();
    if (dir_.empty()) return;
    // The packager's files and channel directories went with it.
    std::error_code ec;
    EXPECT_TRUE(fs::is_empty(dir_, ec)) << "files left in " << dir_;
    fs::remove_all(dir_, ec);
  }
  [[nodiscard]] fs::path channel_dir() const { return dir_ / "news"; }

  // The segment through get(), or "" when 404.
  std::string segment(std::uint64_t sequence) {
    const auto r = packager_->get("news", "seg-" + std::to_string(sequence) + ".ts", "");
    return r ? r->body->str() : std::string{};
  }

  fs::path dir_;
};

TEST_F(DvrDisk, MemoryHoldsTheLiveWindowAndDiskTheRest) {
  // Left over by a "previous run" in the channel's directory: its segments go.
  fs::create_directories(channel_dir());
  tt::write_file(channel_dir() / "seg-7.ts", {0x47});
  make(3, 1, 512);
  EXPECT_FALSE(fs::exists(channel_dir() / "seg-7.ts")) << "emptied at start";
  EXPECT_TRUE(fs::is_directory(channel_dir()));
  std::uint64_t polls = 0;
  feed_copies(0, 5, 1, [&] {
    const auto st = packager_->channel_stats("news");
    ASSERT_TRUE(st);
    ++polls;
    // Memory: the live window's segments, no more (the open one is in the segmenter).
    const std::uint64_t in_memory = st->held_segments - st->disk_segments;
    EXPECT_LE(in_memory, 3u);
    EXPECT_EQ(st->disk_segments, st->held_segments - std::min<std::uint64_t>(st->held_segments, 3));
    EXPECT_EQ(st->disk_errors, 0u);
    const DiskFiles f = files_in(channel_dir());
    EXPECT_EQ(f.sequences.size(), st->disk_segments);
    EXPECT_EQ(f.bytes, st->disk_bytes);
    EXPECT_TRUE(f.others.empty()) << f.others.front();
    if (st->held_segments > 0) {
      // window_bytes is exactly the live playlist's segments.
      const Playlist live = parse_playlist(*get("live.m3u8"));
      std::uint64_t live_bytes = 0;
      for (const Entry& e : live.entries) live_bytes += segment(e.sequence).size();
      EXPECT_EQ(st->window_bytes, live_bytes);
    }
  });
  ASSERT_GT(polls, 10u);
  const auto st = packager_->channel_stats("news");
  EXPECT_EQ(st->segments, 14u);
  EXPECT_EQ(st->held_segments, 14u) << "1 h of DVR: all held";
  EXPECT_EQ(st->disk_segments, 11u);
  EXPECT_GT(st->disk_bytes, 11u * 100'000);
  // Everything held is listed and served, on disk or not; a served on-disk segment is the
  // file's bytes, a whole TS.
  const Playlist ev = parse_playlist(*get("event.m3u8"));
  ASSERT_EQ(ev.entries.size(), 14u);
  expect_consistent(ev, *packager_);
  const DiskFiles f = files_in(channel_dir());
  ASSERT_EQ(f.sequences.size(), 11u);
  for (std::uint64_t k = 0; k < 11; ++k) {
    EXPECT_EQ(f.sequences[k], first_ + k);
    const std::string body = segment(first_ + k);
    EXPECT_TRUE(is_ts(body)) << k;
    EXPECT_EQ(body, file_text(channel_dir() / seg(k))) << k;
  }
  // A time range over on-disk segments.
  const Playlist range = parse_playlist(*get("live.m3u8", "start=" + epoch_s(ev.entries[1].pdt_ms) + "&end=" + epoch_s(ev.entries[5].pdt_ms)));
  EXPECT_EQ(range.type, "VOD");
  EXPECT_EQ(range.entries.size(), 4u);
  expect_consistent(range, *packager_);
  // A file that vanished is a 404, not a crash; the rest are still served.
  fs::remove(channel_dir() / seg(3));
  EXPECT_FALSE(packager_->get("news", seg(3), ""));
  EXPECT_TRUE(packager_->get("news", seg(4), ""));
  // ... and so is one whose bytes changed size behind the packager's back.
  tt::write_file(channel_dir() / seg(4), {0x47, 0, 0});
  EXPECT_FALSE(packager_->get("news", seg(4), ""));

  // Dropping the channel deletes its files and its directory.
  packager_->set_channels({});
  EXPECT_FALSE(fs::exists(channel_dir()));
  // Added again: an empty directory.
  feed_ = new_feed();
  packager_->set_channels({PackagedChannel{"news", "News", feed_}});
  EXPECT_TRUE(fs::is_directory(channel_dir()));
  EXPECT_TRUE(files_in(channel_dir()).sequences.empty());
}

TEST_F(DvrDisk, StartupDeletesOnlyThePackagersOwnFilesAndFollowsNoSymlink) {
  const fs::path outside = tt::temp_dir("hls_dvr_outside");
  tt::write_file(outside / "seg-1.ts", {0x47});
  tt::write_file(outside / "seg-2.ts.tmp", {0x47});
  tt::write_file(outside / "movie.ts", {0x47});
  // A previous run's files in the channel's directory, and others' files next to them.
  fs::create_directories(channel_dir() / "sub");
  const std::vector<std::string> ours{"seg-7.ts", "seg-lo-3.ts.tmp", "seg-hd_1-12.ts", "audio-257-2.ts", "seg-8.ts.tmp"};
  const std::vector<std::string> theirs{"notes.ts", "seg-x.ts", "seg-7.ts.bak", "audio-x-2.ts", "seg-Lo-3.ts", "recording.ts.tmp"};
  for (const auto& n : ours) tt::write_file(channel_dir() / n, {0x47});
  for (const auto& n : theirs) tt::write_file(channel_dir() / n, {'x'});
  tt::write_file(channel_dir() / "sub" / "seg-1.ts", {0x47});                 // no recursion
  fs::create_symlink(outside / "seg-1.ts", channel_dir() / "seg-9.ts");        // a symlink with our name
  fs::create_directories(dir_ / "old");
  tt::write_file(dir_ / "old" / "seg-7.ts", {0x47});                          // no configured channel "old"
  fs::create_directory_symlink(outside, dir_ / "linked");                     // channel "linked": a symlink
  const auto check = [&](const char* when) {
    for (const auto& n : theirs) EXPECT_TRUE(fs::exists(channel_dir() / n)) << n << " " << when;
    EXPECT_TRUE(fs::exists(channel_dir() / "sub" / "seg-1.ts")) << when;
    EXPECT_TRUE(fs::is_symlink(channel_dir() / "seg-9.ts")) << when;
    EXPECT_TRUE(fs::exists(dir_ / "old" / "seg-7.ts")) << when;
    EXPECT_TRUE(fs::is_symlink(dir_ / "linked")) << when;
    for (const char* n : {"seg-1.ts", "seg-2.ts.tmp", "movie.ts"}) EXPECT_TRUE(fs::exists(outside / n)) << n << " " << when;
  };
  make(3, 1, 512);
  for (const auto& n : ours) EXPECT_FALSE(fs::exists(channel_dir() / n)) << n;
  check("at start");
  packager_->set_channels({PackagedChannel{"news", "News", feed_}, PackagedChannel{"linked", "Linked", new_feed()}});
  check("with the symlinked channel");
  packager_->set_channels({PackagedChannel{"news", "News", feed_}});
  check("after dropping it");
  feed_copies(0, 2);
  EXPECT_GT(packager_->channel_stats("news")->disk_segments, 0u);
  packager_.reset();
  check("after the packager");
  // Its own files went: what is left is exactly what it did not write.
  std::vector<std::string> left;
  for (const auto& e : fs::directory_iterator(channel_dir())) left.push_back(e.path().filename().string());
  std::vector<std::string> expected = theirs;
  expected.insert(expected.end(), {"sub", "seg-9.ts"});
  std::sort(left.begin(), left.end());
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(left, expected);
  std::error_code ec;
  fs::remove_all(channel_dir(), ec);
  fs::remove_all(dir_ / "old", ec);
  fs::remove(dir_ / "linked", ec);
  fs::remove_all(outside, ec);
}

TEST_F(DvrDisk, TheMemoryBudgetDeletesNoOnDiskSegmentForTheLiveWindow) {
  // 1 MiB for 3 tracks: 341 KiB each, less than one 6 s segment (~640 kB), so the newest
  // segment alone is over the share; the DVR on disk (1 h) stays whole all the same.
  make(3, 1, 1, 6);
  std::vector<dataplane::OttFeed*> lows;
  PackagedChannel c{"news", "News", feed_};
  const std::vector<std::string> names{"a", "b"};
  for (const auto& r : names) {
    lows.push_back(new_feed());
    also_.push_back(lows.back());
    c.renditions.push_back(PackagedRendition{r, lows.back()});
  }
  packager_->set_channels({c});
  feed_copies(0, 8);
  std::vector<std::string> all{""};
  all.insert(all.end(), names.begin(), names.end());
  for (const std::string& r : all) {
    const auto st = packager_->rendition_stats("news", r);
    ASSERT_TRUE(st) << r;
    EXPECT_GT(st->window_bytes, (1u << 20) / 3) << r << ": the newest alone is over the share";
    EXPECT_EQ(st->evicted, 0u) << r;
    EXPECT_EQ(st->disk_errors, 0u) << r;
    EXPECT_GE(st->held_segments, 6u) << r;
    EXPECT_EQ(st->held_segments, st->segments) << r;
    EXPECT_EQ(st->disk_segments, st->held_segments - 1) << r << ": all but the newest on disk";
  }
  std::size_t files = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(channel_dir())) ++files;
  EXPECT_EQ(files, 3 * (packager_->channel_stats("news")->held_segments - 1));
  expect_consistent(parse_playlist(*get("event.m3u8")), *packager_);
}

TEST_F(DvrDisk, ConcurrentReadersShareOneOpenedFileAndOpensOverTheCapAreRefused) {
  make(3, 1, 512, 1);
  feed_copies(0, 2);  // 1 s segments: 0..8 on disk
  ASSERT_GE(packager_->channel_stats("news")->disk_segments, 5u);
  const std::string file0 = file_text(channel_dir() / seg(0));
  const std::string file1 = file_text(channel_dir() / seg(1));
  ASSERT_FALSE(file0.empty());
  {
    constexpr int kReaders = 16;
    std::vector<std::optional<HlsResource>> got(kReaders);
    std::atomic<int> ready{0};
    std::vector<std::thread> threads;
    for (int i = 0; i < kReaders; ++i)
      threads.emplace_back([&, i] {
        ready.fetch_add(1);
        while (ready.load() < kReaders) std::this_thread::yield();
        got[static_cast<std::size_t>(i)] = packager_->get("news", seg(0), "");
      });
    for (auto& t : threads) t.join();
    for (const auto& r : got) {
      ASSERT_TRUE(r);
      EXPECT_EQ(r->body->data(), got.front()->body->data()) << "one buffer for all readers";
      EXPECT_EQ(*r->body, file0);
    }
    EXPECT_GE(got.front()->body->fd(), 0) << "the file itself, for sendfile: no copy on the heap";
    // Held: a later reader shares it too; another segment has its own.
    EXPECT_EQ(packager_->get("news", seg(0), "")->body.get(), got.front()->body.get());
    EXPECT_EQ(*packager_->get("news", seg(1), "")->body, file1);
  }
  EXPECT_EQ(*packager_->get("news", seg(0), "")->body, file0) << "read again once let go";
  EXPECT_EQ(packager_->channel_stats("news")->disk_reads_refused, 0u);

  // Again with a cap that holds seg-0 but not seg-0 and seg-1 at once.
  packager_.reset();
  mono_ns_ = 0;  // the clock set back: the same numbers again
  read_cap_ = file0.size() + file1.size() / 2;
  make(3, 1, 512, 1);
  feed_copies(0, 2);
  ASSERT_EQ(file_text(channel_dir() / seg(0)), file0) << "the same input makes the same segments";
  ASSERT_EQ(file_text(channel_dir() / seg(1)), file1);
  auto a = packager_->get("news", seg(0), "");
  ASSERT_TRUE(a);
  EXPECT_FALSE(packager_->get("news", seg(1), "")) << "over the cap: 404";
  EXPECT_FALSE(packager_->get("news", seg(1), ""));
  EXPECT_EQ(packager_->channel_stats("news")->disk_reads_refused, 2u);
  const std::uint64_t newest = packager_->channel_stats("news")->segments - 1;
  EXPECT_TRUE(packager_->get("news", seg(newest), "")) << "in memory: not capped";
  auto b = packager_->get("news", seg(0), "");
  ASSERT_TRUE(b) << "shared: no more bytes";
  EXPECT_EQ(b->body.get(), a->body.get());
  a.reset();
  EXPECT_FALSE(packager_->get("news", seg(1), "")) << "still held by b";
  b.reset();
  const auto c = packager_->get("news", seg(1), "");
  ASSERT_TRUE(c) << "released by the last reader";
  EXPECT_EQ(*c->body, file1);
  EXPECT_EQ(packager_->channel_stats("news")->disk_reads_refused, 3u);
}

TEST_F(Packager, KeyUrlsAreNewAfterARestartAndTheirEtagIsOfTheirBytes) {
  // Two runs one after the other, the clock going on (each run its own copy of the input).
  int run = 0;
  const auto first_key = [&] {
    make(3, 1, 512, 2, true);
    feed_copies(run, run + 1);
    ++run;
    const std::string text = *get("live.m3u8");
    const std::size_t at = text.find("URI=\"");
    EXPECT_NE(at, std::string::npos) << text;
    const std::string name = text.substr(at + 5, text.find('"', at + 5) - at - 5);
    const auto k = packager_->get("news", name, "");
    EXPECT_TRUE(k) << name;
    const auto again = packager_->get("news", name, "");
    EXPECT_EQ(again->etag, k->etag) << "stable";
    EXPECT_EQ(hls_key_id(name), std::optional<std::uint64_t>(first_)) << "the channel's first key id: the clock's ms";
    std::pair<std::string, HlsResource> out{name, *k};
    packager_.reset();
    mono_ns_ += 1'000'000;  // the restart takes a millisecond
    return out;
  };
  const auto [name1, key1] = first_key();
  const auto [name2, key2] = first_key();  // a restart: new keys
  ASSERT_TRUE(hls_key_id(name1) && hls_key_id(name2)) << name1 << " " << name2;
  EXPECT_GT(*hls_key_id(name2), *hls_key_id(name1)) << "a restart reuses the first key's URL";
  EXPECT_NE(*key1.body, *key2.body);
  EXPECT_NE(key1.etag, key2.etag);
  EXPECT_NE(key1.etag, "\"k0\"");
}

// Every segment, key and playlist a run serves: name -> (ETag, bytes).
std::map<std::string, std::pair<std::string, std::string>> served(HlsPackager& pk, const std::vector<std::string>& playlists) {
  std::map<std::string, std::pair<std::string, std::string>> out;
  const auto take = [&](const std::string& name) {
    const auto r = pk.get("news", name, "");
    EXPECT_TRUE(r) << name;
    if (r) out[name] = {r->etag, r->body->str()};
  };
  for (const auto& p : playlists) {
    take(p);
    if (!p.starts_with("event")) continue;
    for (const Entry& e : parse_playlist(out[p].second).entries) {
      take(e.uri);
      if (!e.key.empty()) take(e.key);
    }
  }
  return out;
}

// A URL of the first run that the second serves too names the same bytes, and an ETag the
// two give the same name stands for the same bytes.
void expect_no_url_reused(const std::map<std::string, std::pair<std::string, std::string>>& a,
                          const std::map<std::string, std::pair<std::string, std::string>>& b) {
  for (const auto& [name, got] : b) {
    const auto it = a.find(name);
    if (it == a.end()) continue;
    if (name.ends_with(".m3u8")) {
      if (it->second.first == got.first) {
        EXPECT_EQ(it->second.second, got.second) << name << ": the same ETag " << got.first << " for other bytes";
      }
    } else {
      EXPECT_EQ(it->second.second, got.second) << name << " names other bytes after the restart";
      ADD_FAILURE() << name << " served by both runs";  // segments and keys: never, even with the same bytes
    }
  }
}

TEST_F(Packager, ARestartNumbersAboveTheLastRunAndReusesNoUrl) {
  // Run 1: numbers from the wall clock's ms when the channel was made (kT0).
  make(3, 1, 512, 2, true);
  ASSERT_EQ(first_, static_cast<std::uint64_t>(kT0));
  feed_copies(0, 2);
  const Playlist ev1 = parse_playlist(*get("event.m3u8"));
  ASSERT_EQ(ev1.entries.size(), 5u);
  EXPECT_EQ(*ev1.media_sequence, static_cast<std::uint64_t>(kT0)) << "the first number: the clock's ms";
  expect_consistent(ev1, *packager_);
  const auto run1 = served(*packager_, {"index.m3u8", "live.m3u8", "event.m3u8"});
  // twincastd restarts a moment later (1 ms) and its input goes on: other bytes.
  packager_.reset();
  mono_ns_ += 1'000'000;
  make(3, 1, 512, 2, true);
  feed_copies(2, 4);
  const Playlist ev2 = parse_playlist(*get("event.m3u8"));
  ASSERT_GE(ev2.entries.size(), 5u);
  expect_consistent(ev2, *packager_);
  EXPECT_GT(*ev2.media_sequence, ev1.entries.back().sequence) << "numbers below the last run's";
  EXPECT_EQ(*ev2.media_sequence, first_);
  // DISCONTINUITY-SEQUENCE never goes back either (RFC 8216 6.2.1): a player that reloads
  // the playlist across the restart sees it grow.
  EXPECT_GT(*ev2.discontinuity_sequence, last_discontinuity_sequence(ev1));
  EXPECT_EQ(*ev2.discontinuity_sequence, first_);
  EXPECT_LT(first_, std::uint64_t{1} << 53) << "hls.js reads integers up to 2^53";
  const auto run2 = served(*packager_, {"index.m3u8", "live.m3u8", "event.m3u8"});
  EXPECT_GE(run2.size(), 9u);  // 3 playlists, >= 5 segments, a key
  expect_no_url_reused(run1, run2);
  // The key ids too: above the last run's.
  std::uint64_t last_key = 0, first_key = ~std::uint64_t{0};
  for (const Entry& e : ev1.entries) last_key = std::max(last_key, *hls_key_id(e.key));
  for (const Entry& e : ev2.entries) first_key = std::min(first_key, *hls_key_id(e.key));
  EXPECT_GT(first_key, last_key);
}

TEST_F(Packager, AChannelAddedAgainNumbersAboveItsOldSegmentsThoughTheClockWentBack) {
  make(3, 1, 512);
  feed_copies(0, 2);
  const Playlist ev1 = parse_playlist(*get("event.m3u8"));
  ASSERT_EQ(ev1.entries.size(), 5u);
  const auto run1 = served(*packager_, {"index.m3u8", "live.m3u8", "event.m3u8"});
  // Dropped, then added again with the wall clock set back to kT0 (an NTP step): the
  // packager still numbers above what it issued.
  packager_->set_channels({});
  EXPECT_FALSE(get("live.m3u8"));
  mono_ns_ = 0;
  feed_ = new_feed();
  packager_->set_channels({PackagedChannel{"news", "News", feed_}});
  feed_copies(0, 2);
  const Playlist ev2 = parse_playlist(*get("event.m3u8"));
  ASSERT_EQ(ev2.entries.size(), 5u);
  EXPECT_EQ(*ev2.media_sequence, ev1.entries.back().sequence + 1);
  EXPECT_GT(*ev2.discontinuity_sequence, last_discontinuity_sequence(ev1)) << "the clock went back, the count does not";
  expect_no_url_reused(run1, served(*packager_, {"index.m3u8", "live.m3u8", "event.m3u8"}));
}

TEST_F(Packager, AFixedFirstSequenceIsForTestsAndBenchmarks) {
  config_.segment_seconds = 2;
  config_.window_segments = 3;
  config_.dvr_hours = 1;
  config_.memory_mb = 512;
  HlsPackagerOptions o = options();
  o.first_sequence = 0;
  packager_ = std::make_unique<HlsPackager>(config_, std::move(o));
  feed_ = new_feed();
  PackagedChannel c{"news", "News", feed_};
  c.encrypt = true;
  packager_->set_channels({c});
  feed_copies(0, 2);
  const Playlist ev = parse_playlist(*get("event.m3u8"));
  ASSERT_EQ(ev.entries.size(), 5u);
  EXPECT_EQ(*ev.media_sequence, 0u);
  EXPECT_EQ(ev.entries.front().uri, "seg-0.ts");
  EXPECT_EQ(ev.entries.front().key, "key-0.key");
  expect_consistent(ev, *packager_);
}

TEST_F(DvrDisk, EvictionDeletesTheFiles) {
  make(3, 0, 512);    // no DVR hours: 2 x 3 + 1 held, 3 of them in memory
  feed_copies(0, 4);  // 11 segments: 4..10 held, 4..7 on disk
  auto st = packager_->channel_stats("news");
  EXPECT_EQ(st->held_segments, 7u);
  EXPECT_EQ(st->disk_segments, 4u);
  EXPECT_EQ(st->evicted, 4u);
  EXPECT_EQ(files_in(channel_dir()).sequences, (std::vector<std::uint64_t>{first_ + 4, first_ + 5, first_ + 6, first_ + 7}));
  EXPECT_FALSE(packager_->get("news", seg(3), ""));
  feed_copies(4, 6);  // 17 segments: 10..16 held, 10..13 on disk
  EXPECT_EQ(files_in(channel_dir()).sequences, (std::vector<std::uint64_t>{first_ + 10, first_ + 11, first_ + 12, first_ + 13}));
}

TEST_F(DvrDisk, DiskBudgetBoundsWhatIsOnDisk) {
  config_.dvr_disk_mb = 1;
  make(3, 72, 512, 1);  // 1 s segments of ~190 kB; 72 h would hold them all
  const std::uint64_t budget = 1u << 20;
  std::uint64_t peak = 0;
  feed_copies(0, 6, 1, [&] {
    const auto st = packager_->channel_stats("news");
    peak = std::max(peak, st->disk_bytes);
    EXPECT_LE(files_in(channel_dir()).bytes, budget);
    EXPECT_LE(st->held_segments - st->disk_segments, 3u);
  });
  const auto st = packager_->channel_stats("news");
  EXPECT_LE(peak, budget);
  EXPECT_GT(st->disk_bytes, budget / 2);
  EXPECT_GT(st->evicted, 10u);
  EXPECT_EQ(st->held_segments + st->evicted, st->segments);
  const DiskFiles f = files_in(channel_dir());
  EXPECT_EQ(f.sequences.size(), st->disk_segments);
  EXPECT_EQ(f.bytes, st->disk_bytes);
  expect_consistent(parse_playlist(*get("event.m3u8")), *packager_);
}

// The disk budget is shared evenly by the channels: one added by a reload takes its share
// from the others at once, even from one whose input is down (no new segment of its own
// to evict by), so the channels together stay within dvr_disk_mb.
TEST_F(DvrDisk, AChannelAddedTakesItsShareFromAStalledOne) {
  config_.dvr_disk_mb = 1;
  make(3, 72, 512, 1);  // 1 s segments of ~190 kB; 72 h would hold them all
  const std::uint64_t budget = 1u << 20;
  feed_copies(0, 4);
  const std::uint64_t alone = packager_->channel_stats("news")->disk_bytes;
  ASSERT_GT(alone, budget * 3 / 4) << "news fills the whole budget alone";
  // news' input goes down; a reload adds sports, which fills its half.
  dataplane::OttFeed* news = feed_;
  feed_ = new_feed();
  packager_->set_channels({PackagedChannel{"news", "News", news}, PackagedChannel{"sports", "Sports", feed_}});
  const auto on_disk = [&] {
    std::uint64_t n = 0;
    for (const auto& e : fs::recursive_directory_iterator(dir_)) n += e.is_regular_file() ? e.file_size() : 0;
    return n;
  };
  EXPECT_LE(packager_->channel_stats("news")->disk_bytes, budget / 2);
  EXPECT_EQ(files_in(channel_dir()).bytes, packager_->channel_stats("news")->disk_bytes);
  std::uint64_t peak = 0;
  feed_copies(4, 8, 1, [&] { peak = std::max(peak, on_disk()); });
  EXPECT_GT(packager_->channel_stats("sports")->disk_bytes, budget / 4);
  EXPECT_LE(peak, budget);
  // Its playlists list only what is still held, each served.
  const Playlist ev = parse_playlist(*get("event.m3u8"));
  expect_consistent(ev, *packager_);
  EXPECT_EQ(ev.entries.size(), packager_->channel_stats("news")->held_segments);
}

TEST_F(DvrDisk, FfmpegPlaysOnDiskSegmentsThroughTheOrigin) {
  make(3, 1, 512);
  feed_copies(0, 5);  // 14 segments: 0..10 on disk, 11..13 in memory
  ASSERT_EQ(packager_->channel_stats("news")->disk_segments, 11u);
  HlsOrigin origin(*packager_);
  origin.listen("127.0.0.1:0");
  origin.start();
  const std::string base = "http://127.0.0.1:" + std::to_string(origin.ports().at(0)) + "/hls/news/";
  const Playlist all = parse_playlist(*get("event.m3u8"));
  ASSERT_EQ(all.entries.size(), 14u);
  // A finished time range of on-disk segments (2..8): VOD, every frame decoded.
  const std::string range = base + "live.m3u8?start=" + epoch_s(all.entries[2].pdt_ms) + "&end=" + epoch_s(all.entries[9].pdt_ms);
  auto r = tt::run("timeout 120 ffmpeg -nostdin -v error -i " + tt::shell_quote(range) + " -f null - 2>&1");
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(r.out, "");
  const std::uint64_t served = origin.stats().segments.load();
  EXPECT_GE(served, 7u);
  r = tt::run("timeout 120 ffprobe -v error -select_streams v:0 -count_frames -show_entries stream=nb_read_frames -of csv=p=0 " +
              tt::shell_quote(range) + " 2>&1");
  EXPECT_EQ(r.out.substr(0, 4), "350\n") << r.out;  // 7 segments x 2 s x 25 fps
  // event.m3u8 (EVENT, no ENDLIST) from its first segment, 10 s of it: on-disk segments.
  r = tt::run("timeout 120 ffmpeg -nostdin -v error -live_start_index 0 -i " + tt::shell_quote(base + "event.m3u8") +
              " -t 10 -f null - 2>&1");
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(r.out, "");
  EXPECT_GE(origin.stats().segments.load(), served + 5);
  origin.stop();
}

TEST_F(DvrDisk, AnEncryptedChannelsFilesAreTheCiphertext) {
  make(3, 1, 512, 2, true);
  feed_copies(0, 3);  // 8 segments: 0..4 on disk
  ASSERT_EQ(packager_->channel_stats("news")->disk_segments, 5u);
  const std::string text = *get("event.m3u8");
  const std::size_t at = text.find("URI=\"");
  ASSERT_NE(at, std::string::npos) << text;
  const std::string key_name = text.substr(at + 5, text.find('"', at + 5) - at - 5);
  const auto key_body = packager_->get("news", key_name, "");
  ASSERT_TRUE(key_body);
  HlsKey key;
  key.id = *hls_key_id(key_name);
  ASSERT_EQ(key_body->body->size(), 16u);
  std::copy(key_body->body->begin(), key_body->body->end(), reinterpret_cast<char*>(key.bytes.data()));
  for (std::uint64_t k = 0; k < 5; ++k) {
    const std::string file = file_text(channel_dir() / seg(k));
    EXPECT_EQ(file, segment(first_ + k)) << "served as stored";
    EXPECT_FALSE(is_ts(file)) << "plain TS on disk";
    const auto plain = hls_decrypt(key, first_ + k, file);
    ASSERT_TRUE(plain) << k;
    EXPECT_TRUE(is_ts(*plain)) << k;
  }
}

TEST_F(DvrDisk, WriteFailuresAreCountedAndKeptInTheMemoryBudget) {
  make(3, 72, 1, 1);  // 1 MiB of memory, 1 s segments of ~190 kB
  const std::uint64_t budget = 1u << 20;
  std::uint64_t peak = 0;
  const auto watch = [&] {
    const auto st = packager_->channel_stats("news");
    peak = std::max(peak, st->window_bytes);
    // What is listed is numbered right (consecutive), and each in-memory one is served.
    const Playlist ev = parse_playlist(*get("event.m3u8"));
    for (std::size_t i = 0; i < ev.entries.size(); ++i) EXPECT_EQ(ev.entries[i].sequence, *ev.media_sequence + i);
  };
  feed_copies(0, 2, 1, watch);
  auto st = packager_->channel_stats("news");
  ASSERT_GT(st->disk_segments, 3u);
  EXPECT_EQ(st->disk_errors, 0u);

  // The channel's directory removed mid-run: its files are 404, new writes fail (ENOENT).
  const std::uint64_t oldest = *parse_playlist(*get("event.m3u8")).media_sequence;
  fs::remove_all(channel_dir());
  EXPECT_FALSE(packager_->get("news", "seg-" + std::to_string(oldest) + ".ts", ""));
  EXPECT_TRUE(packager_->get("news", seg(st->segments - 1), "")) << "in memory";
  feed_copies(2, 4, 1, watch);
  st = packager_->channel_stats("news");
  const std::uint64_t enoent = st->disk_errors;
  EXPECT_GE(enoent, 8u);
  EXPECT_EQ(st->disk_segments, 0u) << "the vanished ones were evicted by the memory budget";
  EXPECT_EQ(st->disk_bytes, 0u);
  EXPECT_LE(peak, budget);
  EXPECT_GT(st->window_bytes, budget / 2) << "failed writes stay in memory";
  expect_consistent(parse_playlist(*get("event.m3u8")), *packager_);

  // A file where the directory was (ENOTDIR): still counted, still no crash.
  tt::write_file(channel_dir(), {'x'});
  feed_copies(4, 5, 1, watch);
  EXPECT_GT(packager_->channel_stats("news")->disk_errors, enoent);
  fs::remove(channel_dir());

  // The directory back: writes succeed again.
  fs::create_directory(channel_dir());
  feed_copies(5, 6, 1, watch);
  st = packager_->channel_stats("news");
  const std::uint64_t errors = st->disk_errors;
  EXPECT_GE(st->disk_segments, 4u);
  EXPECT_EQ(files_in(channel_dir()).sequences.size(), st->disk_segments);

  // Writes refused for size (RLIMIT_FSIZE: EFBIG, as a full disk refuses them; root too).
  if (::geteuid() != 0) {
    fs::permissions(channel_dir(), fs::perms::owner_read | fs::perms::owner_exec);
    feed_copies(6, 7, 1, watch);
    EXPECT_GT(packager_->channel_stats("news")->disk_errors, errors) << "read-only directory";
    fs::permissions(channel_dir(), fs::perms::owner_all);
  }
  const std::uint64_t before_fsize = packager_->channel_stats("news")->disk_errors;
  rlimit old{};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old), 0);
  const auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
  rlimit small = old;
  small.rlim_cur = 64 * 1024;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  feed_copies(7, 8, 1, watch);
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &old), 0);
  std::signal(SIGXFSZ, old_handler);
  st = packager_->channel_stats("news");
  EXPECT_GE(st->disk_errors, before_fsize + 4);
  EXPECT_LE(peak, budget);
  const DiskFiles f = files_in(channel_dir());
  EXPECT_TRUE(f.others.empty()) << "a partial .tmp left: " << f.others.front();
  EXPECT_EQ(f.sequences.size(), st->disk_segments);
  EXPECT_EQ(f.bytes, st->disk_bytes);
  expect_consistent(parse_playlist(*get("event.m3u8")), *packager_);
}

TEST_F(DvrDisk, FailedWritesAreRetriedWithLaterSegments) {
  make(3, 1, 512, 1);  // 512 MiB: nothing is evicted, so only a retry moves them to disk
  fs::remove_all(channel_dir());
  feed_copies(0, 2);  // 12 segments: those leaving the live window fail (ENOENT)
  auto st = packager_->channel_stats("news");
  const std::uint64_t errors = st->disk_errors;
  ASSERT_GE(errors, 8u);
  EXPECT_EQ(st->disk_segments, 0u);
  EXPECT_GE(st->held_segments - st->disk_segments, 3 + errors) << "kept in memory";
  fs::create_directory(channel_dir());
  feed_copies(2, 4);  // 12 more segments: one retry each
  st = packager_->channel_stats("news");
  EXPECT_EQ(st->disk_errors, errors) << "a segment is counted once";
  EXPECT_EQ(st->evicted, 0u);
  EXPECT_EQ(st->held_segments - st->disk_segments, 3u) << "the failed ones were written on a retry";
  const DiskFiles f = files_in(channel_dir());
  EXPECT_TRUE(f.others.empty());
  EXPECT_EQ(f.sequences.size(), st->disk_segments);
  EXPECT_EQ(f.bytes, st->disk_bytes);
  // Each retried one is served from its file, whole.
  const Playlist ev = parse_playlist(*get("event.m3u8"));
  for (const Entry& e : ev.entries) {
    const std::string path = (channel_dir() / ("seg-" + std::to_string(e.sequence) + ".ts")).string();
    const std::string body = segment(e.sequence);
    EXPECT_TRUE(is_ts(body)) << e.sequence;
    if (fs::exists(path)) {
      EXPECT_EQ(body, file_text(path)) << e.sequence;
    }
  }
}

TEST_F(DvrDisk, ReadsRaceEvictionSafely) {
  make(3, 0, 512, 1);  // 1 s segments, 7 held: a file deleted every segment
  std::atomic<bool> done{false};
  std::atomic<std::uint64_t> served{0}, missing{0}, bad{0};
  std::thread reader([&] {
    while (!done.load()) {
      const auto st = packager_->channel_stats("news");
      const std::uint64_t made = st ? st->segments : 0;
      // The oldest held and the ones just evicted: on disk, or gone under the reader.
      for (std::uint64_t k = made > 12 ? made - 12 : 0; k < made; ++k) {
        const auto r = packager_->get("news", seg(k), "");
        if (!r) {
          ++missing;
        } else if (is_ts(r->body->str())) {
          ++served;
        } else {
          ++bad;
        }
      }
    }
  });
  feed_copies(0, 8);
  done = true;
  reader.join();
  EXPECT_EQ(bad.load(), 0u) << "a torn or foreign file was served";
  EXPECT_GT(served.load(), 0u);
  EXPECT_GT(missing.load(), 0u) << "the evicted ones";
  const auto st = packager_->channel_stats("news");
  EXPECT_EQ(st->disk_errors, 0u);
  EXPECT_EQ(files_in(channel_dir()).sequences.size(), st->disk_segments);
}

TEST_F(DvrDisk, EachRenditionKeepsItsLiveWindowInMemoryAndItsOwnFiles) {
  make(3, 1, 512);
  news_with_rendition_lo();
  feed_copies(0, 4, 1, [&] {
    for (const std::string r : {"", "lo"}) {
      const auto st = packager_->rendition_stats("news", r);
      ASSERT_TRUE(st) << r;
      EXPECT_LE(st->held_segments - st->disk_segments, 3u) << r;
    }
  });
  const auto primary = packager_->rendition_stats("news", "");
  const auto low = packager_->rendition_stats("news", "lo");
  ASSERT_GT(low->disk_segments, 3u);
  EXPECT_EQ(low->disk_errors, 0u);
  std::uint64_t n_main = 0, n_lo = 0, lo_bytes = 0;
  for (const auto& e : fs::directory_iterator(channel_dir())) {
    const std::string name = e.path().filename().string();
    if (name.rfind("seg-lo-", 0) == 0) {
      ++n_lo;
      lo_bytes += fs::file_size(e.path());
      const std::string body = packager_->get("news", name, "")->body->str();
      EXPECT_EQ(body, file_text(e.path())) << name;
      EXPECT_TRUE(is_ts(body)) << name;
    } else {
      ++n_main;
    }
  }
  EXPECT_EQ(n_lo, low->disk_segments);
  EXPECT_EQ(lo_bytes, low->disk_bytes);
  EXPECT_EQ(n_main, primary->disk_segments);
  // The rendition's playlist lists its on-disk segments, each served.
  const std::string text = *get("event-lo.m3u8");
  std::istringstream in(text);
  std::size_t listed = 0;
  for (std::string l; std::getline(in, l);) {
    if (l.rfind("seg-lo-", 0) != 0) continue;
    ++listed;
    EXPECT_TRUE(packager_->get("news", l, "")) << l;
  }
  EXPECT_EQ(listed, low->held_segments);
}

}  // namespace
}  // namespace twincast::control
