// Transcoder: turns one channel's MPEG-TS (an SPTS with H.264/HEVC/MPEG-2 video and usually
// one audio stream) into lower H.264 renditions for an ABR ladder, with FFmpeg's libraries:
// libavformat's mpegts demuxer reads the pushed bytes, libavcodec decodes the video, libswscale
// scales it to each rung's height and libx264 (through libavcodec) encodes it; the first audio
// stream is copied unchanged into every rung; libavformat's mpegts muxer writes each rung into
// memory and pop() hands the bytes out. Nothing here touches the data plane.
//
// Threads and the CPU budget (TranscoderConfig::threads = B, rungs R):
//   - one demux/decode thread: reads the input queue through a custom AVIOContext (a blocking
//     read woken by push() and stop()), demuxes, decodes the video with one libavcodec thread,
//     and hands each decoded frame (refcounted, not copied) and each audio packet to the
//     encode workers. Decoding 720p25 H.264 costs ~6% of a core (ffmpeg -threads 1 decodes
//     10 s in 0.58 CPU-s here); it is not counted in B, which is the encoder budget
//     (ott.transcode_threads: "encoder threads").
//   - W = min(B, R) encode workers; rung r runs on worker r % W and does the scaling, encoding
//     and muxing of that rung. When B < R a worker encodes several rungs one after the other.
//   - libx264 frame threads per rung: t_r = max(1, B / R), plus one for the first B % R rungs
//     when B > R (the first rungs, usually the largest pictures, get the remainder). With
//     t_r = 1 x264 encodes on the worker itself (no thread of its own); with t_r > 1 x264 runs
//     t_r frame threads (and its lookahead thread) while the worker waits on them.
//   So at most B threads encode at once (plus the decode thread). stats() reports W and t_r.
//   The daemon's ott.transcode_threads is the budget of all transcoded channels together: the
//   packager gives each Transcoder its share.
//
// Timestamps (the HLS segmenter cuts every rendition at the same key frames):
//   - every output frame keeps its source frame's PTS exactly (90 kHz; the mpegts muxer runs
//     with mpegts_copyts and avoid_negative_ts disabled, so nothing is shifted); DTS follows
//     from x264's reordering (B-frames) and stays below PTS.
//   - a rung's key frames (IDR) are exactly the source's key frames: every source key frame is
//     forced as an IDR (AV_PICTURE_TYPE_I with forced-idr), and x264 places no others
//     (keyint=infinite, scenecut=0). Decoded frames before the first key frame of a stream are
//     skipped (counted), so each output starts with an IDR at a source key frame's PTS.
//   - audio packets are copied with their PTS/DTS untouched.
//   - the 33-bit PTS/DTS are unwrapped here (libavformat's one-time wrap correction is off:
//     it stopped every frame ~26.5 h into a stream), so a 24/7 stream runs through its wraps;
//     the muxer writes the low 33 bits, so outputs wrap where the source does. A video DTS
//     that goes backwards or jumps more than 10 s forwards (an encoder reset) ends the stream
//     as a discontinuity does (below).
//
// Rate control: ABR at the rung's video_kbps with VBV maxrate 1.2x and bufsize 2x that rate.
// Width = height x source display aspect ratio, rounded to an even number; square pixels out.
// When the source's aspect ratio changes at a key frame (a new SPS), each rung's encoder is
// drained and reopened at the new width within the same output stream (no discontinuity).
//
// Input switches and restarts: push(..., discontinuity = true) or flush() ends the current
// stream: the decoder and every encoder are drained (their last frames are output) and the
// muxers finish; the next bytes start a new stream (new demuxer, decoder, encoders and
// muxers). The first chunk a rung outputs after any break in its output (a new stream, or
// output chunks dropped, see below) carries discontinuity = true.
//
// Overload: nothing blocks the caller of push(). The input queue holds at most
// max_queue_bytes; a push() that does not fit is dropped whole and counted
// (input_bytes_dropped), and the next accepted push() starts a new stream as if it carried
// discontinuity = true (a gap in a transport stream cannot be decoded cleanly, so the
// outputs restart cleanly at the next source key frame instead of carrying broken pictures).
// Inside, the decode thread waits when an encode worker has kMaxQueuedFrames frames queued
// (encoders slower than real time fill the input queue, which then drops as above). The
// output queue also holds at most max_queue_bytes: a chunk that does not fit is dropped
// (output_bytes_dropped) and that rung's next chunk carries discontinuity = true.
//
// Bad input: bytes that do not open as MPEG-TS, a stream without video, a video codec with no
// decoder, and packets the decoder refuses are counted (stats().errors) and never crash; the
// decode thread keeps reading and retries on the next bytes (every attempt consumes input).
// libav's own log lines go to av_log (stderr by default; the process sets its level); x264
// is told to log only warnings and errors (no per-encoder info lines).
//
// Cost (measured, 2-core VM under load, tests/control/transcoder_test Ladder720p...): 10 s
// of 720p25 into 540p/1500k + 360p/800k at veryfast takes 2.9-3.4 CPU-s (~0.33 core per
// channel at real time; ffmpeg's CLI doing the same ladder: 3.0-3.1 CPU-s).
//
// Thread-safety: push(), pop(), flush() and stats() may be called from any thread; the
// constructor, start() and stop() from one owner thread.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace twincast::control {

struct TranscodeRung {
  std::string name;                 // for stats and logs
  std::uint16_t height = 0;         // lines, even, 16..4320; the width keeps the aspect ratio
  std::uint32_t video_kbps = 0;     // H.264 average bitrate, 1..200000
};

struct TranscoderConfig {
  std::vector<TranscodeRung> rungs;     // at least one
  unsigned threads = 1;                 // encoder CPU budget B, 1..64 (see the header comment)
  std::string preset = "veryfast";      // libx264 preset (ultrafast..placebo)
  std::size_t max_queue_bytes = 32u << 20;  // input queue bound, and output queue bound (each)
};

struct TranscodedChunk {
  std::size_t rung = 0;             // index in TranscoderConfig::rungs
  std::vector<std::uint8_t> ts;     // whole 188-byte packets
  bool discontinuity = false;       // first chunk after a break in this rung's output
};

// Error reasons: the enum, its name (a metric label).
#define TWINCAST_TRANSCODE_ERRORS(X)                                                   \
  X(kDemux, "demux")                /* the input did not open as MPEG-TS */            \
  X(kNoVideo, "no_video")           /* an input without a video stream */              \
  X(kDecoderOpen, "decoder_open")   /* no decoder for the video codec, or it failed */ \
  X(kDecode, "decode")              /* a packet or frame the decoder refused */        \
  X(kEncoderOpen, "encoder_open")   /* libx264 or the scaler refused the picture */    \
  X(kEncode, "encode")              /* a frame the encoder refused */                  \
  X(kMux, "mux")                    /* the muxer refused a packet or the header */

enum class TranscodeError : std::uint8_t {
#define TWINCAST_X(e, s) e,
  TWINCAST_TRANSCODE_ERRORS(TWINCAST_X)
#undef TWINCAST_X
};
inline constexpr std::size_t kNumTranscodeErrors = 0
#define TWINCAST_X(e, s) +1
    TWINCAST_TRANSCODE_ERRORS(TWINCAST_X)
#undef TWINCAST_X
    ;
std::string_view transcode_error_name(TranscodeError e);

struct TranscodeRungStats {
  std::string name;
  unsigned worker = 0;              // which encode worker runs this rung
  unsigned x264_threads = 1;        // libx264 frame threads (1: encodes on the worker)
  std::uint16_t width = 0;          // current output picture (0 before the first frame)
  std::uint16_t height = 0;
  std::uint64_t frames_encoded = 0; // video packets out of the encoder
  std::uint64_t key_frames = 0;     // of which IDR
  std::uint64_t bytes_out = 0;      // TS bytes queued for pop()
  std::uint64_t streams = 0;        // streams this rung finished (trailer written or aborted)
  std::uint64_t encode_errors = 0;  // encoder_open + encode + mux of this rung
  double encode_seconds = 0;        // worker time in scale + encode + mux for this rung
};

struct TranscoderStats {
  std::uint64_t input_bytes = 0;           // accepted by push()
  std::uint64_t input_bytes_dropped = 0;   // refused by push(): the queue was full
  std::uint64_t input_chunks_dropped = 0;
  std::uint64_t input_bytes_queued = 0;    // waiting for the decode thread now
  std::uint64_t streams = 0;               // streams the decode thread opened (demuxer up)
  std::uint64_t frames_decoded = 0;
  std::uint64_t frames_skipped = 0;        // before a stream's first key frame, no PTS, or a PTS
                                           // over 10 s from the DTS (corrupt) or not rising
  double decode_seconds = 0;               // decode thread time in the decoder
  std::uint64_t output_bytes_dropped = 0;  // output queue full
  std::uint64_t output_bytes_queued = 0;   // waiting for pop()
  unsigned workers = 0;                    // encode worker threads (W)
  // Nothing queued or in progress: every byte pushed so far is through, and after flush()
  // every rung's last bytes are poppable. (Read before the output queue: pop() after it.)
  bool idle = false;
  std::array<std::uint64_t, kNumTranscodeErrors> errors{};  // by TranscodeError, all rungs
  std::vector<TranscodeRungStats> rungs;
  [[nodiscard]] std::uint64_t error_count(TranscodeError e) const {
    return errors[static_cast<std::size_t>(e)];
  }
};

class Transcoder {
 public:
  // Frames a worker may have queued before the decode thread waits for it.
  static constexpr std::size_t kMaxQueuedFrames = 8;

  // Validates the config (throws std::invalid_argument listing every problem: no rungs, a
  // height that is odd or out of range, a bitrate out of range, threads out of 1..64, an empty
  // queue bound) and checks that libx264 is there and takes the preset by opening a tiny
  // encoder (throws std::runtime_error if not). Starts no thread.
  explicit Transcoder(TranscoderConfig config);
  ~Transcoder();  // stop()
  Transcoder(const Transcoder&) = delete;
  Transcoder& operator=(const Transcoder&) = delete;

  // Queues source bytes (whole 188-byte packets of one SPTS); copies them; never blocks
  // (a short mutex). Over max_queue_bytes the chunk is dropped and counted (see Overload).
  // discontinuity = true: these bytes come after an input switch; the current stream ends.
  // May be called before start().
  void push(std::span<const std::uint8_t> ts, bool discontinuity);
  // Ends the current stream once the bytes already pushed are transcoded: the encoders are
  // drained and every rung's last frames are output (e.g. the source stopped).
  void flush();
  // The next output chunk of any rung, in each rung's order; false when there is none.
  bool pop(TranscodedChunk& out);

  // Starts the decode thread and the encode workers. Once per object (std::logic_error).
  void start();
  // Stops and joins every thread promptly: streams in progress are abandoned, not drained
  // (their encoders are closed without flushing). Idempotent. pop() still returns what was
  // output before.
  void stop();

  [[nodiscard]] TranscoderStats stats() const;
  [[nodiscard]] const TranscoderConfig& config() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace twincast::control
