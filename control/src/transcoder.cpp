// Transcoder: libavformat demux -> libavcodec decode -> libswscale + libx264 per rung ->
// libavformat mpegts mux into memory. See transcoder.hpp for threads, budget and timestamps.
#include "twincast/control/transcoder.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <utility>

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/opt.h>
#include <libswscale/swscale.h>
}

namespace twincast::control {

std::string_view transcode_error_name(TranscodeError e) {
  switch (e) {
#define TWINCAST_X(en, s) \
  case TranscodeError::en: return s;
    TWINCAST_TRANSCODE_ERRORS(TWINCAST_X)
#undef TWINCAST_X
  }
  return "unknown";
}

namespace {

using Clock = std::chrono::steady_clock;
constexpr std::size_t kTsPacket = 188;
constexpr int kInputIoBytes = 64 * 1024;
constexpr int kOutputIoBytes = static_cast<int>(kTsPacket) * 32;  // whole packets per flush
constexpr std::int64_t kMaxInterleaveUs = 2'000'000;  // a silent audio PID stalls video <= 2 s
constexpr std::size_t kMaxEarlyAudio = 256;             // audio held before a rung's first frame
constexpr unsigned kMaxThreads = 64;
// MPEG-TS timestamps: 33 bits at 90 kHz. The demuxer's own wrap correction works once only
// (it adds 2^33 below a point 60 s before the first timestamp, so 26.5 h later timestamps drop
// by 2^33 again); it is switched off and run_stream() unwraps into continuing 64-bit values.
constexpr std::int64_t kTsWrap = std::int64_t{1} << 33;
constexpr std::int64_t kMaxPtsJump = 10 * 90'000;  // video DTS further forward: a new stream
constexpr std::size_t kMaxHeldAudio = 128;          // audio of a new time base seen before video

struct FrameFree {
  void operator()(AVFrame* f) const { av_frame_free(&f); }
};
struct PacketFree {
  void operator()(AVPacket* p) const { av_packet_free(&p); }
};
struct CodecFree {
  void operator()(AVCodecContext* c) const { avcodec_free_context(&c); }
};
struct ParamsFree {
  void operator()(AVCodecParameters* p) const { avcodec_parameters_free(&p); }
};
using FramePtr = std::unique_ptr<AVFrame, FrameFree>;
using PacketPtr = std::unique_ptr<AVPacket, PacketFree>;
using CodecPtr = std::unique_ptr<AVCodecContext, CodecFree>;
using ParamsPtr = std::unique_ptr<AVCodecParameters, ParamsFree>;

std::string av_error_text(int err) {
  char buf[AV_ERROR_MAX_STRING_SIZE] = {};
  av_strerror(err, buf, sizeof buf);
  return buf;
}

bool frame_is_key(const AVFrame& f) {
#ifdef AV_FRAME_FLAG_KEY
  return (f.flags & AV_FRAME_FLAG_KEY) != 0;
#else
  return f.key_frame != 0;
#endif
}

void set_frame_key(AVFrame& f, bool key) {
  f.pict_type = key ? AV_PICTURE_TYPE_I : AV_PICTURE_TYPE_NONE;
#ifdef AV_FRAME_FLAG_KEY
  if (key) f.flags |= AV_FRAME_FLAG_KEY; else f.flags &= ~AV_FRAME_FLAG_KEY;
#else
  f.key_frame = key ? 1 : 0;
#endif
}

std::uint64_t ns_since(Clock::time_point t0) {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count());
}

// The x264 encoder of one rung (also used by the constructor to check libx264 and the preset).
CodecPtr open_x264(const std::string& preset, int width, int height, AVRational time_base,
                   AVRational frame_rate, std::uint32_t kbps, unsigned threads, std::string* error) {
  const AVCodec* codec = avcodec_find_encoder_by_name("libx264");
  if (codec == nullptr) {
    *error = "libavcodec has no libx264 encoder";
    return nullptr;
  }
  CodecPtr enc(avcodec_alloc_context3(codec));
  if (!enc) {
    *error = "out of memory";
    return nullptr;
  }
  enc->width = width;
  enc->height = height;
  enc->pix_fmt = AV_PIX_FMT_YUV420P;
  enc->sample_aspect_ratio = AVRational{1, 1};
  enc->time_base = time_base;
  enc->framerate = frame_rate;
  const auto bps = static_cast<std::int64_t>(kbps) * 1000;
  enc->bit_rate = bps;
  enc->rc_max_rate = bps * 6 / 5;
  enc->rc_buffer_size = static_cast<int>(std::min<std::int64_t>(bps * 2, INT32_MAX));
  enc->thread_count = static_cast<int>(threads);
  av_opt_set(enc->priv_data, "preset", preset.c_str(), 0);
  av_opt_set(enc->priv_data, "forced-idr", "1", 0);
  // Key frames only where the source has them (forced per frame): none of x264's own.
  // log=1: x264 warnings and errors reach av_log, not its per-encoder info lines.
  // force-cfr=1: the SPS's VUI timing says `frame_rate` (fixed_frame_rate_flag=1); without
  // it x264 writes the 90 kHz time base there (time_scale 180000: "90000 fps" to a reader
  // such as the HLS master's FRAME-RATE). Timestamps are passed through all the same.
  av_opt_set(enc->priv_data, "x264-params", "keyint=infinite:scenecut=0:open-gop=0:force-cfr=1:log=1", 0);
  if (const int r = avcodec_open2(enc.get(), codec, nullptr); r < 0) {
    *error = "libx264 (preset " + preset + "): " + av_error_text(r);
    return nullptr;
  }
  return enc;
}

// What the decode thread knows about a stream, shared with the encode workers.
struct StreamInfo {
  AVRational video_time_base{1, 90000};
  AVRational frame_rate{25, 1};
  AVRational sample_aspect{0, 1};
  ParamsPtr audio;  // null: no audio stream
  AVRational audio_time_base{1, 90000};
};

struct WorkItem {
  enum class Kind : std::uint8_t { kBegin, kVideo, kAudio, kEnd };
  Kind kind = Kind::kBegin;
  std::shared_ptr<const StreamInfo> info;  // kBegin
  FramePtr frame;                          // kVideo
  bool key = false;                        // kVideo
  PacketPtr packet;                        // kAudio
};

struct InputChunk {
  std::vector<std::uint8_t> bytes;  // empty for an end marker
  bool starts_stream = false;       // discontinuity: the stream before it ends
  bool end = false;                 // flush(): end of the stream
};

template <std::size_t N>
using Counters = std::array<std::atomic<std::uint64_t>, N>;

}  // namespace

struct Transcoder::Impl {
  struct Rung {
    TranscodeRung config;
    unsigned worker = 0;
    unsigned x264_threads = 1;
    std::size_t index = 0;

    // State of the current stream: worker thread only.
    std::shared_ptr<const StreamInfo> info;
    CodecPtr enc;
    AVFormatContext* mux = nullptr;
    SwsContext* sws = nullptr;
    FramePtr scaled;
    PacketPtr packet{av_packet_alloc()};
    int audio_index = -1;
    std::int64_t first_pts = AV_NOPTS_VALUE;  // of the stream's first picture (video time base)
    bool failed = false;         // this stream's encoder or muxer failed: ignore the rest
    bool had_output = false;     // this stream produced bytes
    bool break_pending = false;  // the next chunk carries discontinuity = true
    std::deque<PacketPtr> early_audio;  // before the first frame of the stream
    std::vector<std::uint8_t> pending;  // muxed, not yet handed to the output queue

    // Counters: one writer, the worker.
    std::atomic<std::uint64_t> frames_encoded{0}, key_frames{0}, bytes_out{0}, streams{0},
        encode_ns{0}, encode_errors{0};
    std::atomic<std::uint16_t> width{0}, height{0};
    Counters<kNumTranscodeErrors> errors{};
  };

  struct Worker {
    mutable std::mutex mutex;
    std::condition_variable cv;  // items added, items taken, stop
    std::deque<WorkItem> items;
    std::size_t n_frames = 0;
    std::vector<std::size_t> rungs;
    bool busy = false;  // handling an item (under mutex)
    std::thread thread;
  };

  TranscoderConfig config;
  std::deque<Rung> rungs;  // stable addresses (the muxers' AVIO opaque)
  std::deque<Worker> workers;
  std::atomic<bool> stopping{false};
  std::atomic<bool> started{false};

  // Input queue.
  mutable std::mutex in_mutex;
  std::condition_variable in_cv;
  std::deque<InputChunk> in;
  std::size_t in_bytes = 0;
  std::size_t in_offset = 0;     // consumed bytes of in.front()
  bool overflow_break = false;   // a push was dropped: the next accepted one starts a stream
  std::uint64_t input_bytes = 0, input_bytes_dropped = 0, input_chunks_dropped = 0;
  // Decode thread, under in_mutex for the reader callback.
  bool stream_eof = false;
  bool decode_waiting = false;   // in begin_input() with nothing to read

  // Output queue.
  mutable std::mutex out_mutex;
  std::deque<TranscodedChunk> out;
  std::size_t out_bytes = 0;
  std::uint64_t output_bytes_dropped = 0;

  // Decode thread counters (one writer).
  std::atomic<std::uint64_t> streams{0}, frames_decoded{0}, frames_skipped{0}, decode_ns{0};
  Counters<kNumTranscodeErrors> errors{};
  std::thread decode_thread;

  void count(TranscodeError e) { errors[static_cast<std::size_t>(e)].fetch_add(1, std::memory_order_relaxed); }
  static void count(Rung& r, TranscodeError e) {
    r.errors[static_cast<std::size_t>(e)].fetch_add(1, std::memory_order_relaxed);
    r.encode_errors.fetch_add(1, std::memory_order_relaxed);
  }

  // ---------------------------------------------------------------- input (decode thread)

  static int read_cb(void* opaque, std::uint8_t* buf, int size) {
    return static_cast<Impl*>(opaque)->read(buf, static_cast<std::size_t>(size));
  }
  static int interrupt_cb(void* opaque) {
    return static_cast<Impl*>(opaque)->stopping.load(std::memory_order_relaxed) ? 1 : 0;
  }

  int read(std::uint8_t* buf, std::size_t size) {
    std::unique_lock lock(in_mutex);
    std::size_t copied = 0;
    while (copied < size) {
      if (stopping.load()) return AVERROR_EXIT;
      if (stream_eof) break;
      if (in.empty()) {
        if (copied > 0) break;
        in_cv.wait(lock, [&] { return stopping.load() || !in.empty(); });
        continue;
      }
      InputChunk& c = in.front();
      if (c.end || c.starts_stream) {  // this stream ends here
        if (copied > 0) break;
        if (c.end) in.pop_front();
        stream_eof = true;
        break;
      }
      const std::size_t n = std::min(size - copied, c.bytes.size() - in_offset);
      std::copy_n(c.bytes.data() + in_offset, n, buf + copied);
      copied += n;
      in_offset += n;
      if (in_offset == c.bytes.size()) {
        in_bytes -= c.bytes.size();
        in.pop_front();
        in_offset = 0;
      }
    }
    return copied > 0 ? static_cast<int>(copied) : AVERROR_EOF;
  }

  // Waits for input and starts a stream on it: false when stopping.
  bool begin_input() {
    std::unique_lock lock(in_mutex);
    for (;;) {
      decode_waiting = true;
      in_cv.wait(lock, [&] { return stopping.load() || !in.empty(); });
      decode_waiting = false;
      if (stopping.load()) return false;
      if (in.front().end) {  // a flush with nothing before it
        in.pop_front();
        continue;
      }
      in.front().starts_stream = false;
      stream_eof = false;
      return true;
    }
  }

  // ---------------------------------------------------------------- decode thread

  void decode_main() {
    FramePtr frame(av_frame_alloc());
    PacketPtr pkt(av_packet_alloc());
    while (begin_input()) run_stream(*frame, *pkt);
  }

  // Hands an item to every worker (a video frame to each as its own reference); waits while a
  // worker has kMaxQueuedFrames frames. False when stopping.
  bool dispatch(WorkItem::Kind kind, const std::shared_ptr<const StreamInfo>& info,
                const AVFrame* frame, bool key, const AVPacket* packet) {
    for (Worker& w : workers) {
      WorkItem item;
      item.kind = kind;
      item.info = info;
      item.key = key;
      if (frame != nullptr) {
        item.frame.reset(av_frame_clone(frame));
        if (!item.frame) return !stopping.load();
      }
      if (packet != nullptr) {
        item.packet.reset(av_packet_clone(packet));
        if (!item.packet) return !stopping.load();
      }
      std::unique_lock lock(w.mutex);
      if (kind == WorkItem::Kind::kVideo) {
        w.cv.wait(lock, [&] { return stopping.load() || w.n_frames < kMaxQueuedFrames; });
        ++w.n_frames;
      }
      if (stopping.load()) return false;
      w.items.push_back(std::move(item));
      w.cv.notify_all();
    }
    return true;
  }

  struct StreamState {
    AVCodecContext* dec = nullptr;
    bool seen_key = false;
    std::int64_t last_pts = AV_NOPTS_VALUE;
    std::int64_t video_ref = AV_NOPTS_VALUE;  // last video DTS, unwrapped (64-bit, 90 kHz)
    std::int64_t audio_ref = AV_NOPTS_VALUE;  // last audio DTS, unwrapped, before any video
    std::deque<PacketPtr> held_audio;         // raw audio far from video_ref (see run_stream)
  };

  // The 64-bit value of the 33-bit timestamp `raw` nearest to `ref` (within +-2^32).
  static std::int64_t unwrap_ts(std::int64_t raw, std::int64_t ref) {
    if (raw == AV_NOPTS_VALUE || ref == AV_NOPTS_VALUE) return raw;
    std::int64_t d = (raw - ref) % kTsWrap;
    if (d >= kTsWrap / 2) {
      d -= kTsWrap;
    } else if (d < -kTsWrap / 2) {
      d += kTsWrap;
    }
    return ref + d;
  }

  // Rewrites a packet's 33-bit PTS/DTS as 64-bit values continuing from `ref`; returns its
  // DTS (else PTS), or AV_NOPTS_VALUE.
  static std::int64_t unwrap_packet(AVPacket& p, std::int64_t ref) {
    if (p.dts != AV_NOPTS_VALUE) {
      p.dts = unwrap_ts(p.dts, ref);
      p.pts = unwrap_ts(p.pts, p.dts);
      return p.dts;
    }
    p.pts = unwrap_ts(p.pts, ref);
    return p.pts;
  }

  // A time-base break in the source (its encoder reset its clock, or a splice without a
  // switch marker): the current stream ends as on a discontinuity (the decoder and every
  // encoder are drained, the muxers finish) and a new one begins with the same streams; the
  // decoder is flushed, so the outputs restart at the next source key frame.
  bool restart_stream(StreamState& s, const std::shared_ptr<const StreamInfo>& info, AVFrame& frame) {
    bool ok = decode(s, nullptr, frame);
    avcodec_flush_buffers(s.dec);
    s.seen_key = false;
    s.last_pts = AV_NOPTS_VALUE;
    s.audio_ref = AV_NOPTS_VALUE;
    if (ok) ok = dispatch(WorkItem::Kind::kEnd, nullptr, nullptr, false, nullptr);
    if (ok) {
      streams.fetch_add(1, std::memory_order_relaxed);
      ok = dispatch(WorkItem::Kind::kBegin, info, nullptr, false, nullptr);
    }
    return ok;
  }

  // Audio held while video still ran on the old time base: what belongs to the new one
  // (within kMaxPtsJump of video_ref) goes on, the rest is dropped.
  bool release_held_audio(StreamState& s) {
    bool ok = true;
    while (ok && !s.held_audio.empty()) {
      PacketPtr p = std::move(s.held_audio.front());
      s.held_audio.pop_front();
      const std::int64_t at = unwrap_packet(*p, s.video_ref);
      if (at != AV_NOPTS_VALUE && std::abs(at - s.video_ref) <= kMaxPtsJump) {
        ok = dispatch(WorkItem::Kind::kAudio, nullptr, nullptr, false, p.get());
      }
    }
    return ok;
  }

  // Sends one packet (nullptr: drain) to the decoder and dispatches the frames it returns.
  // decode_ns counts the decoder's time only, not the waits in dispatch().
  bool decode(StreamState& s, const AVPacket* pkt, AVFrame& frame) {
    auto t0 = Clock::now();
    int r = avcodec_send_packet(s.dec, pkt);
    std::uint64_t ns = ns_since(t0);
    if (r < 0 && r != AVERROR_EOF) count(TranscodeError::kDecode);
    bool ok = true;
    while (ok) {
      t0 = Clock::now();
      r = avcodec_receive_frame(s.dec, &frame);
      ns += ns_since(t0);
      if (r == AVERROR(EAGAIN) || r == AVERROR_EOF) break;
      if (r < 0) {
        count(TranscodeError::kDecode);
        break;
      }
      frames_decoded.fetch_add(1, std::memory_order_relaxed);
      const std::int64_t pts = frame.pts != AV_NOPTS_VALUE ? frame.pts : frame.best_effort_timestamp;
      const bool key = frame_is_key(frame);
      if (key) s.seen_key = true;
      // A PTS further than kMaxPtsJump from the packets' DTS is a corrupted PES header: that
      // picture is skipped; taken as the last PTS, it made every later frame look late.
      const bool wild = pts != AV_NOPTS_VALUE && s.video_ref != AV_NOPTS_VALUE &&
                        std::abs(pts - s.video_ref) > kMaxPtsJump;
      if (!s.seen_key || pts == AV_NOPTS_VALUE || wild || (s.last_pts != AV_NOPTS_VALUE && pts <= s.last_pts)) {
        frames_skipped.fetch_add(1, std::memory_order_relaxed);
      } else {
        s.last_pts = pts;
        frame.pts = pts;
        ok = dispatch(WorkItem::Kind::kVideo, nullptr, &frame, key, nullptr);
      }
      av_frame_unref(&frame);
    }
    decode_ns.fetch_add(ns, std::memory_order_relaxed);
    return ok;
  }

  void run_stream(AVFrame& frame, AVPacket& pkt) {
    AVFormatContext* fmt = avformat_alloc_context();
    auto* io_buf = static_cast<std::uint8_t*>(av_malloc(kInputIoBytes));
    AVIOContext* io = fmt != nullptr && io_buf != nullptr
                          ? avio_alloc_context(io_buf, kInputIoBytes, 0, this, &read_cb, nullptr, nullptr)
                          : nullptr;
    if (io == nullptr) {
      av_free(io_buf);
      avformat_free_context(fmt);
      std::this_thread::sleep_for(std::chrono::milliseconds(100));  // out of memory: back off
      return;
    }
    fmt->pb = io;
    fmt->flags |= AVFMT_FLAG_CUSTOM_IO;
    fmt->interrupt_callback = AVIOInterruptCB{&interrupt_cb, this};
    fmt->correct_ts_overflow = 0;  // raw 33-bit timestamps: unwrapped below, for ever
    StreamState s;
    CodecPtr dec;  // null unless the stream opened with a video decoder
    int video = -1;
    int audio = -1;
    bool opened = avformat_open_input(&fmt, nullptr, av_find_input_format("mpegts"), nullptr) >= 0;
    if (!opened) {
      fmt = nullptr;  // freed by avformat_open_input
      if (!stopping.load()) count(TranscodeError::kDemux);
    } else if (avformat_find_stream_info(fmt, nullptr) < 0) {
      if (!stopping.load()) count(TranscodeError::kDemux);
    } else if ((video = av_find_best_stream(fmt, AVMEDIA_TYPE_VIDEO, -1, -1, nullptr, 0)) < 0) {
      if (!stopping.load()) count(TranscodeError::kNoVideo);
    } else {
      for (unsigned i = 0; i < fmt->nb_streams; ++i) {
        const AVCodecParameters* par = fmt->streams[i]->codecpar;
        if (par->codec_type == AVMEDIA_TYPE_AUDIO && par->codec_id != AV_CODEC_ID_NONE) {
          audio = static_cast<int>(i);
          break;
        }
      }
      const AVStream* vst = fmt->streams[video];
      const AVCodec* codec = avcodec_find_decoder(vst->codecpar->codec_id);
      dec.reset(codec != nullptr ? avcodec_alloc_context3(codec) : nullptr);
      bool dec_ok = dec && avcodec_parameters_to_context(dec.get(), vst->codecpar) >= 0;
      if (dec_ok) {
        dec->pkt_timebase = vst->time_base;  // frames carry the stream's 90 kHz PTS
        dec->thread_count = 1;               // the decode thread only (see the header)
        dec_ok = avcodec_open2(dec.get(), codec, nullptr) >= 0;
      }
      if (!dec_ok) {
        count(TranscodeError::kDecoderOpen);
        dec.reset();
      }
    }
    if (dec) {
      streams.fetch_add(1, std::memory_order_relaxed);
      auto info = std::make_shared<StreamInfo>();
      const AVStream* vst = fmt->streams[video];
      info->video_time_base = vst->time_base;
      if (vst->avg_frame_rate.num > 0 && vst->avg_frame_rate.den > 0) {
        info->frame_rate = vst->avg_frame_rate;
      } else if (vst->r_frame_rate.num > 0 && vst->r_frame_rate.den > 0) {
        info->frame_rate = vst->r_frame_rate;
      }
      info->sample_aspect = vst->codecpar->sample_aspect_ratio;
      if (audio >= 0) {
        info->audio.reset(avcodec_parameters_alloc());
        if (info->audio && avcodec_parameters_copy(info->audio.get(), fmt->streams[audio]->codecpar) < 0) {
          info->audio.reset();
        }
        info->audio_time_base = fmt->streams[audio]->time_base;
        if (!info->audio) audio = -1;
      }
      s.dec = dec.get();
      bool ok = dispatch(WorkItem::Kind::kBegin, info, nullptr, false, nullptr);
      // Timestamps: every packet is unwrapped against the last video DTS (audio before the
      // first video packet against the last audio DTS). A video DTS that goes backwards or
      // more than kMaxPtsJump forwards is a time-base break: restart_stream(). Audio further
      // than kMaxPtsJump from the video is held (the new time base often reaches the audio
      // first) until the video breaks too; a bounded queue, oldest dropped.
      while (ok) {
        const int r = av_read_frame(fmt, &pkt);
        if (r == AVERROR(EAGAIN)) continue;
        if (r < 0) break;
        if (pkt.stream_index == video) {
          const std::int64_t at = unwrap_packet(pkt, s.video_ref);
          if (at != AV_NOPTS_VALUE) {
            if (s.video_ref != AV_NOPTS_VALUE && (at < s.video_ref || at > s.video_ref + kMaxPtsJump)) {
              ok = restart_stream(s, info, frame);
              s.video_ref = at;
              if (ok) ok = release_held_audio(s);
            }
            s.video_ref = at;
          }
          if (ok) ok = decode(s, &pkt, frame);
        } else if (pkt.stream_index == audio) {
          const std::int64_t ref = s.video_ref != AV_NOPTS_VALUE ? s.video_ref : s.audio_ref;
          if (s.video_ref != AV_NOPTS_VALUE && pkt.dts != AV_NOPTS_VALUE &&
              std::abs(unwrap_ts(pkt.dts, ref) - ref) > kMaxPtsJump) {
            if (s.held_audio.size() == kMaxHeldAudio) s.held_audio.pop_front();
            s.held_audio.emplace_back(av_packet_clone(&pkt));  // raw: unwrapped on release
          } else {
            const std::int64_t at = unwrap_packet(pkt, ref);
            if (at != AV_NOPTS_VALUE && s.video_ref == AV_NOPTS_VALUE) s.audio_ref = at;
            ok = dispatch(WorkItem::Kind::kAudio, nullptr, nullptr, false, &pkt);
          }
        }
        av_packet_unref(&pkt);
      }
      av_packet_unref(&pkt);
      s.held_audio.clear();
      if (ok && !stopping.load()) ok = decode(s, nullptr, frame);  // drain the decoder
      if (ok && !stopping.load()) dispatch(WorkItem::Kind::kEnd, nullptr, nullptr, false, nullptr);
    }
    dec.reset();
    if (fmt != nullptr) avformat_close_input(&fmt);  // custom IO: the AVIOContext stays ours
    av_freep(&io->buffer);
    avio_context_free(&io);
    // The stream ended on a marker or stop; after an error, the next attempt reads on.
    std::lock_guard lock(in_mutex);
    stream_eof = false;
  }

  // ---------------------------------------------------------------- encode workers

#if LIBAVFORMAT_VERSION_MAJOR >= 61
  static int write_cb(void* opaque, const std::uint8_t* buf, int size) {
#else
  static int write_cb(void* opaque, std::uint8_t* buf, int size) {
#endif
    auto* r = static_cast<Rung*>(opaque);
    r->pending.insert(r->pending.end(), buf, buf + size);
    return size;
  }

  void worker_main(Worker& w) {
    for (;;) {
      WorkItem item;
      {
        std::unique_lock lock(w.mutex);
        w.busy = false;
        w.cv.wait(lock, [&] { return stopping.load() || !w.items.empty(); });
        if (stopping.load()) break;
        w.busy = true;
        item = std::move(w.items.front());
        w.items.pop_front();
        if (item.kind == WorkItem::Kind::kVideo) --w.n_frames;
        w.cv.notify_all();
      }
      for (const std::size_t i : w.rungs) handle(rungs[i], item);
    }
    for (const std::size_t i : w.rungs) close_rung(rungs[i], /*drain=*/false);
  }

  void handle(Rung& r, const WorkItem& item) {
    switch (item.kind) {
      case WorkItem::Kind::kBegin:
        close_rung(r, false);
        r.info = item.info;
        r.failed = false;
        r.had_output = false;
        break;
      case WorkItem::Kind::kVideo: {
        if (r.failed || !r.info) return;
        const auto t0 = Clock::now();
        if (!r.enc && !open_rung(r, *item.frame)) {
          r.failed = true;
          r.early_audio.clear();
        } else if (item.key && rung_width(r, *item.frame) != r.scaled->width && !reopen_encoder(r, *item.frame)) {
          r.failed = true;
        } else {
          encode(r, item.frame.get(), item.key);
        }
        r.encode_ns.fetch_add(ns_since(t0), std::memory_order_relaxed);
        break;
      }
      case WorkItem::Kind::kAudio:
        if (r.failed || !r.info || (r.audio_index < 0 && r.mux != nullptr)) return;
        if (r.mux == nullptr) {  // before the first frame: kept to start with the picture
          if (!r.info->audio) return;
          if (r.early_audio.size() == kMaxEarlyAudio) r.early_audio.pop_front();
          r.early_audio.emplace_back(av_packet_clone(item.packet.get()));
          return;
        }
        write_audio(r, *item.packet);
        emit(r);
        break;
      case WorkItem::Kind::kEnd: {
        const auto t0 = Clock::now();
        close_rung(r, true);
        r.encode_ns.fetch_add(ns_since(t0), std::memory_order_relaxed);
        r.info.reset();
        break;
      }
    }
  }

  // The rung's picture width for a source frame: height x the frame's display aspect ratio.
  static int rung_width(const Rung& r, const AVFrame& f) {
    AVRational sar = f.sample_aspect_ratio.num > 0 ? f.sample_aspect_ratio : r.info->sample_aspect;
    if (sar.num <= 0 || sar.den <= 0) sar = AVRational{1, 1};
    const double display_w = static_cast<double>(f.width) * sar.num / sar.den;
    return std::max(2, 2 * static_cast<int>(std::lround(display_w * r.config.height / f.height / 2.0)));
  }

  // The source's display aspect ratio changed at a key frame (a new SPS or sequence header:
  // an SD/HD programme change, DVB's 4:3/16:9 switch): the encoder is drained and opened
  // again at the new width, in the same muxer (x264 repeats its SPS at every IDR), so the
  // output neither stretches the new picture nor breaks its timeline.
  bool reopen_encoder(Rung& r, const AVFrame& f) {
    encode(r, nullptr, false);
    const int width = rung_width(r, f);
    std::string error;
    CodecPtr enc = open_x264(config.preset, width, r.config.height, r.info->video_time_base, r.info->frame_rate,
                             r.config.video_kbps, r.x264_threads, &error);
    FramePtr scaled(enc ? av_frame_alloc() : nullptr);
    if (scaled) {
      scaled->format = AV_PIX_FMT_YUV420P;
      scaled->width = width;
      scaled->height = r.config.height;
    }
    if (!scaled || av_frame_get_buffer(scaled.get(), 0) < 0) {
      count(r, TranscodeError::kEncoderOpen);
      return false;
    }
    r.enc = std::move(enc);
    r.scaled = std::move(scaled);
    r.mux->streams[0]->codecpar->width = width;
    r.width.store(static_cast<std::uint16_t>(width), std::memory_order_relaxed);
    return true;
  }

  bool open_rung(Rung& r, const AVFrame& f) {
    const int height = r.config.height;
    const int width = rung_width(r, f);
    std::string error;
    r.enc = open_x264(config.preset, width, height, r.info->video_time_base, r.info->frame_rate,
                      r.config.video_kbps, r.x264_threads, &error);
    if (!r.enc) {
      count(r, TranscodeError::kEncoderOpen);
      return false;
    }
    r.scaled.reset(av_frame_alloc());
    if (!r.scaled) return fail_open(r, TranscodeError::kEncoderOpen);
    r.scaled->format = AV_PIX_FMT_YUV420P;
    r.scaled->width = width;
    r.scaled->height = height;
    if (av_frame_get_buffer(r.scaled.get(), 0) < 0) return fail_open(r, TranscodeError::kEncoderOpen);
    r.width.store(static_cast<std::uint16_t>(width), std::memory_order_relaxed);
    r.height.store(static_cast<std::uint16_t>(height), std::memory_order_relaxed);

    if (avformat_alloc_output_context2(&r.mux, nullptr, "mpegts", nullptr) < 0) {
      r.mux = nullptr;
      return fail_open(r, TranscodeError::kMux);
    }
    auto* buf = static_cast<std::uint8_t*>(av_malloc(kOutputIoBytes));
    r.mux->pb = buf != nullptr ? avio_alloc_context(buf, kOutputIoBytes, 1, &r, nullptr, &write_cb, nullptr) : nullptr;
    if (r.mux->pb == nullptr) {
      av_free(buf);
      return fail_open(r, TranscodeError::kMux);
    }
    r.mux->flags |= AVFMT_FLAG_CUSTOM_IO;
    r.mux->avoid_negative_ts = AVFMT_AVOID_NEG_TS_DISABLED;  // copyts: no shift
    r.mux->max_interleave_delta = kMaxInterleaveUs;
    r.mux->flush_packets = 1;
    AVStream* vst = avformat_new_stream(r.mux, nullptr);
    if (vst == nullptr || avcodec_parameters_from_context(vst->codecpar, r.enc.get()) < 0) {
      return fail_open(r, TranscodeError::kMux);
    }
    vst->time_base = r.enc->time_base;
    r.audio_index = -1;
    if (r.info->audio) {
      AVStream* ast = avformat_new_stream(r.mux, nullptr);
      if (ast == nullptr || avcodec_parameters_copy(ast->codecpar, r.info->audio.get()) < 0) {
        return fail_open(r, TranscodeError::kMux);
      }
      ast->codecpar->codec_tag = 0;
      ast->time_base = r.info->audio_time_base;
      r.audio_index = ast->index;
    }
    AVDictionary* opts = nullptr;
    av_dict_set(&opts, "mpegts_copyts", "1", 0);
    const int hr = avformat_write_header(r.mux, &opts);
    av_dict_free(&opts);
    if (hr < 0) return fail_open(r, TranscodeError::kMux);

    // Audio held from before this first frame: from the picture's time on.
    r.first_pts = f.pts;
    for (PacketPtr& p : r.early_audio) {
      if (p) write_audio(r, *p);
    }
    r.early_audio.clear();
    return true;
  }

  bool fail_open(Rung& r, TranscodeError e) {
    count(r, e);
    free_rung(r);
    return false;
  }

  // Copies an audio packet into the rung, from the stream's first picture on.
  void write_audio(Rung& r, AVPacket& src) {
    if (r.audio_index < 0) return;
    const std::int64_t at = src.pts != AV_NOPTS_VALUE ? src.pts : src.dts;
    if (at != AV_NOPTS_VALUE &&
        av_compare_ts(at, r.info->audio_time_base, r.first_pts, r.info->video_time_base) < 0) {
      return;
    }
    AVPacket* p = r.packet.get();
    if (av_packet_ref(p, &src) < 0) return;
    p->stream_index = r.audio_index;
    av_packet_rescale_ts(p, r.info->audio_time_base, r.mux->streams[r.audio_index]->time_base);
    if (av_interleaved_write_frame(r.mux, p) < 0) count(r, TranscodeError::kMux);
    av_packet_unref(p);
  }

  // Scales and encodes one frame (nullptr: drain the encoder), muxes what comes out.
  void encode(Rung& r, const AVFrame* src, bool key) {
    int ret = 0;
    if (src != nullptr) {
      r.sws = sws_getCachedContext(r.sws, src->width, src->height, static_cast<AVPixelFormat>(src->format),
                                   r.scaled->width, r.scaled->height, AV_PIX_FMT_YUV420P, SWS_BILINEAR,
                                   nullptr, nullptr, nullptr);
      if (r.sws == nullptr || av_frame_make_writable(r.scaled.get()) < 0) {
        count(r, TranscodeError::kEncoderOpen);
        return;
      }
      sws_scale(r.sws, src->data, src->linesize, 0, src->height, r.scaled->data, r.scaled->linesize);
      r.scaled->pts = src->pts;
      set_frame_key(*r.scaled, key);
      ret = avcodec_send_frame(r.enc.get(), r.scaled.get());
    } else {
      ret = avcodec_send_frame(r.enc.get(), nullptr);
    }
    if (ret < 0 && ret != AVERROR_EOF) count(r, TranscodeError::kEncode);
    AVPacket* p = r.packet.get();
    for (;;) {
      ret = avcodec_receive_packet(r.enc.get(), p);
      if (ret == AVERROR(EAGAIN) || ret == AVERROR_EOF) break;
      if (ret < 0) {
        count(r, TranscodeError::kEncode);
        break;
      }
      r.frames_encoded.fetch_add(1, std::memory_order_relaxed);
      if ((p->flags & AV_PKT_FLAG_KEY) != 0) r.key_frames.fetch_add(1, std::memory_order_relaxed);
      p->stream_index = 0;
      av_packet_rescale_ts(p, r.enc->time_base, r.mux->streams[0]->time_base);
      if (av_interleaved_write_frame(r.mux, p) < 0) count(r, TranscodeError::kMux);
      av_packet_unref(p);
    }
    emit(r);
  }

  // Hands the muxed whole packets to the output queue.
  void emit(Rung& r) {
    const std::size_t n = r.pending.size() / kTsPacket * kTsPacket;
    if (n == 0) return;
    TranscodedChunk chunk;
    chunk.rung = r.index;
    chunk.ts.assign(r.pending.begin(), r.pending.begin() + static_cast<std::ptrdiff_t>(n));
    r.pending.erase(r.pending.begin(), r.pending.begin() + static_cast<std::ptrdiff_t>(n));
    r.had_output = true;
    std::lock_guard lock(out_mutex);
    if (out_bytes + n > config.max_queue_bytes) {
      output_bytes_dropped += n;
      r.break_pending = true;
      return;
    }
    chunk.discontinuity = r.break_pending;
    r.break_pending = false;
    out_bytes += n;
    out.push_back(std::move(chunk));
    r.bytes_out.fetch_add(n, std::memory_order_relaxed);
  }

  // Ends the rung's stream: drains the encoder and finishes the muxer when `drain`, else
  // abandons them.
  void close_rung(Rung& r, bool drain) {
    if (r.mux != nullptr && r.enc) {
      if (drain) {
        encode(r, nullptr, false);
        if (av_write_trailer(r.mux) < 0) count(r, TranscodeError::kMux);
        avio_flush(r.mux->pb);
        emit(r);
      }
    }
    if (r.info) r.streams.fetch_add(1, std::memory_order_relaxed);
    if (r.had_output) r.break_pending = true;
    r.had_output = false;
    r.pending.clear();
    free_rung(r);
  }

  static void free_rung(Rung& r) {
    if (r.mux != nullptr) {
      if (r.mux->pb != nullptr) {
        av_freep(&r.mux->pb->buffer);
        avio_context_free(&r.mux->pb);
      }
      avformat_free_context(r.mux);
      r.mux = nullptr;
    }
    r.enc.reset();
    sws_freeContext(r.sws);
    r.sws = nullptr;
    r.scaled.reset();
    r.early_audio.clear();
    r.audio_index = -1;
  }
};

namespace {

std::string validate(const TranscoderConfig& c) {
  std::ostringstream e;
  if (c.rungs.empty()) e << "transcoder: no rungs; ";
  for (std::size_t i = 0; i < c.rungs.size(); ++i) {
    const TranscodeRung& r = c.rungs[i];
    if (r.height < 16 || r.height > 4320 || r.height % 2 != 0) {
      e << "transcoder: rung " << i << " (" << r.name << "): height " << r.height
        << " is not an even number in 16..4320; ";
    }
    if (r.video_kbps < 1 || r.video_kbps > 200000) {
      e << "transcoder: rung " << i << " (" << r.name << "): video_kbps " << r.video_kbps
        << " is not in 1..200000; ";
    }
  }
  if (c.threads < 1 || c.threads > kMaxThreads) e << "transcoder: threads " << c.threads << " is not in 1..64; ";
  if (c.preset.empty()) e << "transcoder: empty preset; ";
  if (c.max_queue_bytes < kTsPacket) e << "transcoder: max_queue_bytes below one packet; ";
  std::string s = e.str();
  if (!s.empty()) s.resize(s.size() - 2);
  return s;
}

}  // namespace

Transcoder::Transcoder(TranscoderConfig config) : impl_(std::make_unique<Impl>()) {
  if (const std::string errors = validate(config); !errors.empty()) throw std::invalid_argument(errors);
  std::string error;
  if (!open_x264(config.preset, 64, 64, AVRational{1, 90000}, AVRational{25, 1}, 500, 1, &error)) {
    throw std::runtime_error("transcoder: " + error);
  }
  const auto n_rungs = static_cast<unsigned>(config.rungs.size());
  const unsigned budget = config.threads;
  const unsigned n_workers = std::min(budget, n_rungs);
  impl_->config = std::move(config);
  impl_->workers.resize(n_workers);
  for (unsigned i = 0; i < n_rungs; ++i) {
    Impl::Rung& r = impl_->rungs.emplace_back();
    r.config = impl_->config.rungs[i];
    r.index = i;
    r.worker = i % n_workers;
    r.x264_threads = budget > n_rungs ? budget / n_rungs + (i < budget % n_rungs ? 1 : 0) : 1;
    impl_->workers[r.worker].rungs.push_back(i);
  }
}

Transcoder::~Transcoder() { stop(); }

void Transcoder::push(std::span<const std::uint8_t> ts, bool discontinuity) {
  Impl& m = *impl_;
  std::lock_guard lock(m.in_mutex);
  if (ts.empty()) {
    if (discontinuity) m.in.push_back(InputChunk{{}, false, true});
    m.in_cv.notify_all();
    return;
  }
  if (m.in_bytes + ts.size() > m.config.max_queue_bytes) {
    m.input_bytes_dropped += ts.size();
    ++m.input_chunks_dropped;
    m.overflow_break = true;
    return;
  }
  m.in.push_back(InputChunk{std::vector<std::uint8_t>(ts.begin(), ts.end()),
                            discontinuity || m.overflow_break, false});
  m.overflow_break = false;
  m.in_bytes += ts.size();
  m.input_bytes += ts.size();
  m.in_cv.notify_all();
}

void Transcoder::flush() {
  Impl& m = *impl_;
  std::lock_guard lock(m.in_mutex);
  m.in.push_back(InputChunk{{}, false, true});
  m.in_cv.notify_all();
}

bool Transcoder::pop(TranscodedChunk& out) {
  Impl& m = *impl_;
  std::lock_guard lock(m.out_mutex);
  if (m.out.empty()) return false;
  out = std::move(m.out.front());
  m.out.pop_front();
  m.out_bytes -= out.ts.size();
  return true;
}

void Transcoder::start() {
  Impl& m = *impl_;
  if (m.started.exchange(true)) throw std::logic_error("Transcoder::start: already started");
  for (Impl::Worker& w : m.workers) w.thread = std::thread([&m, &w] { m.worker_main(w); });
  m.decode_thread = std::thread([&m] { m.decode_main(); });
}

void Transcoder::stop() {
  Impl& m = *impl_;
  m.stopping.store(true);
  {
    std::lock_guard lock(m.in_mutex);
    m.in_cv.notify_all();
  }
  for (Impl::Worker& w : m.workers) {
    std::lock_guard lock(w.mutex);
    w.cv.notify_all();
  }
  if (m.decode_thread.joinable()) m.decode_thread.join();
  for (Impl::Worker& w : m.workers) {
    if (w.thread.joinable()) w.thread.join();
  }
}

TranscoderStats Transcoder::stats() const {
  const Impl& m = *impl_;
  TranscoderStats s;
  {
    std::lock_guard lock(m.in_mutex);
    s.input_bytes = m.input_bytes;
    s.input_bytes_dropped = m.input_bytes_dropped;
    s.input_chunks_dropped = m.input_chunks_dropped;
    s.input_bytes_queued = m.in_bytes;
    s.idle = m.started.load() && m.decode_waiting && m.in.empty();
  }
  for (const Impl::Worker& w : m.workers) {
    std::lock_guard lock(w.mutex);
    if (w.busy || !w.items.empty()) s.idle = false;
  }
  {
    std::lock_guard lock(m.out_mutex);
    s.output_bytes_dropped = m.output_bytes_dropped;
    s.output_bytes_queued = m.out_bytes;
  }
  s.streams = m.streams.load(std::memory_order_relaxed);
  s.frames_decoded = m.frames_decoded.load(std::memory_order_relaxed);
  s.frames_skipped = m.frames_skipped.load(std::memory_order_relaxed);
  s.decode_seconds = static_cast<double>(m.decode_ns.load(std::memory_order_relaxed)) * 1e-9;
  s.workers = static_cast<unsigned>(m.workers.size());
  for (std::size_t e = 0; e < kNumTranscodeErrors; ++e) s.errors[e] = m.errors[e].load(std::memory_order_relaxed);
  for (const Impl::Rung& r : m.rungs) {
    TranscodeRungStats rs;
    rs.name = r.config.name;
    rs.worker = r.worker;
    rs.x264_threads = r.x264_threads;
    rs.width = r.width.load(std::memory_order_relaxed);
    rs.height = r.height.load(std::memory_order_relaxed);
    rs.frames_encoded = r.frames_encoded.load(std::memory_order_relaxed);
    rs.key_frames = r.key_frames.load(std::memory_order_relaxed);
    rs.bytes_out = r.bytes_out.load(std::memory_order_relaxed);
    rs.streams = r.streams.load(std::memory_order_relaxed);
    rs.encode_errors = r.encode_errors.load(std::memory_order_relaxed);
    rs.encode_seconds = static_cast<double>(r.encode_ns.load(std::memory_order_relaxed)) * 1e-9;
    for (std::size_t e = 0; e < kNumTranscodeErrors; ++e) s.errors[e] += r.errors[e].load(std::memory_order_relaxed);
    s.rungs.push_back(std::move(rs));
  }
  return s;
}

const TranscoderConfig& Transcoder::config() const { return impl_->config; }

}  // namespace twincast::control
