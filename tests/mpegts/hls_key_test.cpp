// EXT-X-KEY in media playlists (mpegts::hls::media_playlist with MediaEntry::key_uri):
// before the first encrypted entry, again only when the key changes, METHOD=NONE when
// encryption stops, after the entry's DISCONTINUITY; none for a clear playlist.
#include <gtest/gtest.h>

#include <string>

#include "twincast/mpegts/hls.hpp"

namespace hls = twincast::mpegts::hls;

namespace {

constexpr std::int64_t kT0 = 1'795'642'800'000;  // 2026-11-25T21:40:00Z

hls::MediaEntry entry(std::uint64_t seq, std::string key, bool discontinuity = false) {
  hls::MediaEntry e;
  e.uri = "seg-" + std::to_string(seq) + ".ts";
  e.duration_s = 2;
  e.discontinuity = discontinuity;
  e.program_date_time_ms = kT0 + static_cast<std::int64_t>(seq) * 2000;
  e.key_uri = std::move(key);
  return e;
}

}  // namespace

TEST(HlsKeyTags, OnePerKeyChangeBeforeItsFirstSegment) {
  hls::MediaPlaylist p;
  p.media_sequence = 4;
  p.entries = {entry(4, "key-2.key"), entry(5, "key-2.key"), entry(6, "key-3.key", true), entry(7, "key-3.key"),
               entry(8, "")};
  EXPECT_EQ(hls::media_playlist(p),
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:4\n"
            "#EXT-X-DISCONTINUITY-SEQUENCE:0\n#EXT-X-INDEPENDENT-SEGMENTS\n"
            "#EXT-X-KEY:METHOD=AES-128,URI=\"key-2.key\"\n"
            "#EXT-X-PROGRAM-DATE-TIME:2026-11-25T21:40:08.000Z\n#EXTINF:2.000,\nseg-4.ts\n"
            "#EXT-X-PROGRAM-DATE-TIME:2026-11-25T21:40:10.000Z\n#EXTINF:2.000,\nseg-5.ts\n"
            "#EXT-X-DISCONTINUITY\n#EXT-X-KEY:METHOD=AES-128,URI=\"key-3.key\"\n"
            "#EXT-X-PROGRAM-DATE-TIME:2026-11-25T21:40:12.000Z\n#EXTINF:2.000,\nseg-6.ts\n"
            "#EXT-X-PROGRAM-DATE-TIME:2026-11-25T21:40:14.000Z\n#EXTINF:2.000,\nseg-7.ts\n"
            "#EXT-X-KEY:METHOD=NONE\n"
            "#EXT-X-PROGRAM-DATE-TIME:2026-11-25T21:40:16.000Z\n#EXTINF:2.000,\nseg-8.ts\n");
}

TEST(HlsKeyTags, ClearPlaylistsHaveNone) {
  hls::MediaPlaylist p;
  p.entries = {entry(0, ""), entry(1, "")};
  EXPECT_EQ(hls::media_playlist(p).find("EXT-X-KEY"), std::string::npos);
  // Encryption starting mid-playlist: the clear entries get no tag, the first key does.
  p.entries.push_back(entry(2, "key-0.key"));
  const std::string text = hls::media_playlist(p);
  EXPECT_NE(text.find("\nseg-1.ts\n#EXT-X-KEY:METHOD=AES-128,URI=\"key-0.key\"\n"
                      "#EXT-X-PROGRAM-DATE-TIME:2026-11-25T21:40:04.000Z\n"),
            std::string::npos)
      << text;
  EXPECT_EQ(text.find("#EXT-X-KEY"), text.rfind("#EXT-X-KEY"));
  EXPECT_EQ(text.find("METHOD=NONE"), std::string::npos);
}
