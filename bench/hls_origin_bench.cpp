// The HLS origin as a load target (bench/compare_nginx): the real HlsOrigin with its default
// limits (two threads) serving, from memory, one channel "news" with a ~1 KB live media
// playlist (live.m3u8, Cache-Control max-age=1) and a 2 MB segment (seg-1.ts, max-age=86400,
// immutable), on 127.0.0.1:PORT until SIGINT or SIGTERM.
//
//   hls_origin_bench [--port=N] [--dir=DIR] [--threads=N]
//
// --port=0 (the default) picks a free port. --threads: the server's threads (default: the
// origin's default, 2). --dir=DIR also writes the same two files as
// DIR/hls/news/live.m3u8 and DIR/hls/news/seg-1.ts, so a peer (nginx) serves identical bytes.
// Prints "port N" on stdout once it accepts connections; on exit, the origin's counters.
#include <signal.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "twincast/control/hls_origin.hpp"
#include "twincast/mpegts/hls.hpp"

namespace tc = twincast::control;
namespace hls = twincast::mpegts::hls;

namespace {

constexpr std::size_t kSegmentPackets = 11155;  // 2 097 140 bytes: 2 MB of whole TS packets
constexpr std::uint64_t kSequence = 1;

// A ~1 KB live playlist: 12 segments of 2 s with program date times, as the packager writes.
std::string make_playlist() {
  hls::MediaPlaylist p;
  p.target_duration_s = 2;
  p.media_sequence = kSequence;
  for (std::uint64_t s = kSequence; s < kSequence + 12; ++s) {
    p.entries.push_back(hls::MediaEntry{.uri = "seg-" + std::to_string(s) + ".ts",
                                        .duration_s = 2.0,
                                        .discontinuity = false,
                                        .program_date_time_ms = 1'764'000'000'000 + static_cast<std::int64_t>(s) * 2000});
  }
  return hls::media_playlist(p);
}

// TS packets (sync byte, PID 0x100, a continuity counter) with pseudo-random payload.
std::string make_segment() {
  std::string s(kSegmentPackets * 188, '\0');
  std::uint32_t x = 2463534242U;
  for (std::size_t i = 0; i < s.size(); ++i) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    s[i] = static_cast<char>(x & 0xFF);
  }
  for (std::size_t p = 0; p < kSegmentPackets; ++p) {
    char* pkt = s.data() + p * 188;
    pkt[0] = 0x47;
    pkt[1] = 0x01;
    pkt[2] = 0x00;
    pkt[3] = static_cast<char>(0x10 | (p & 0x0F));
  }
  return s;
}

class BenchSource : public tc::HlsSource {
 public:
  BenchSource()
      : playlist_(tc::SharedBytes::heap(make_playlist())),
        segment_(tc::SharedBytes::in_memfd(make_segment(), "seg-1.ts")) {}  // as the packager stores it

  std::optional<tc::HlsResource> get(std::string_view channel, std::string_view name, std::string_view) override {
    if (channel != "news") return std::nullopt;
    if (name == "live.m3u8") {
      return tc::HlsResource{.body = playlist_,
                             .content_type = "application/vnd.apple.mpegurl",
                             .etag = "\"m1\"",
                             .kind = tc::HlsResource::Kind::kPlaylist,
                             .max_age_s = 1.0};
    }
    if (name == "seg-1.ts") {
      return tc::HlsResource{.body = segment_,
                             .content_type = "video/mp2t",
                             .etag = "\"s1-1764000002000\"",
                             .kind = tc::HlsResource::Kind::kSegment,
                             .max_age_s = 0};
    }
    return std::nullopt;
  }
  std::vector<std::string> channel_ids() override { return {"news"}; }
  std::string channels_json() override {
    return R"([{"id":"news","name":"News","state":"serving","url":"/hls/news/index.m3u8"}])";
  }

  [[nodiscard]] std::string_view playlist() const { return playlist_->view(); }
  [[nodiscard]] std::string_view segment() const { return segment_->view(); }

 private:
  std::shared_ptr<const tc::SharedBytes> playlist_;
  std::shared_ptr<const tc::SharedBytes> segment_;
};

void write(const std::filesystem::path& p, std::string_view bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) {
    std::fprintf(stderr, "hls_origin_bench: cannot write %s\n", p.c_str());
    std::exit(1);
  }
}

}  // namespace

int main(int argc, char** argv) {
  unsigned long port = 0;
  std::filesystem::path dir;
  tc::HlsOriginOptions options;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a.rfind("--port=", 0) == 0) {
      port = std::strtoul(argv[i] + 7, nullptr, 10);
    } else if (a.rfind("--dir=", 0) == 0) {
      dir = std::string(a.substr(6));
    } else if (a.rfind("--threads=", 0) == 0) {
      options.limits.threads = std::strtoul(argv[i] + 10, nullptr, 10);
    } else {
      std::fprintf(stderr, "usage: hls_origin_bench [--port=N] [--dir=DIR] [--threads=N]\n");
      return 2;
    }
  }
  // SIGINT / SIGTERM end the run: blocked here (and in the server's threads, which inherit
  // the mask), then waited for below.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  BenchSource source;
  if (!dir.empty()) {
    const auto channel_dir = dir / "hls" / "news";
    std::filesystem::create_directories(channel_dir);
    write(channel_dir / "live.m3u8", source.playlist());
    write(channel_dir / "seg-1.ts", source.segment());
  }
  tc::HlsOrigin origin(source, options);
  origin.listen("127.0.0.1:" + std::to_string(port));
  origin.start();
  std::printf("port %u\n", static_cast<unsigned>(origin.ports().at(0)));
  std::fflush(stdout);

  int sig = 0;
  sigwait(&stop_signals, &sig);
  origin.stop();
  const auto& st = origin.stats();
  std::fprintf(stderr, "hls_origin_bench: %llu playlists, %llu segments, %llu not found\n",
               static_cast<unsigned long long>(st.playlists.load()),
               static_cast<unsigned long long>(st.segments.load()),
               static_cast<unsigned long long>(st.not_found.load()));
  return 0;
}
