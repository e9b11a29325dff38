// Structured log lines for the control plane: one logfmt line per event, rate-limited per
// cause, to stderr — or, when stderr is connected to the systemd journal, to the journal
// with its priority and one journal field per logfmt field.
//
//   level=warn cause=srt_reject srt_input=0 input=backup msg="rejected caller 10.0.0.9:4000: wrong or missing passphrase" suppressed=12
//
// A line is: level, cause (a short snake_case word that says what happened and that
// operators grep and alert on), the fields in the order given, msg, and suppressed=N when
// lines with the same rate key were dropped since the last one written.
//
// Rate limiting: at most one line per rate key per interval (default 10 s). The rate key is
// the cause and what the line is about: the values of its subject fields (kSubjectFields:
// channel, input, srt_input, output, port, multiplex). Other fields (peer, reason, ...) vary
// freely within one key. A dropped line only increments the key's suppressed count, which
// the next written line of that key carries.
//
// Threads: thread-safe, for control threads only. It formats, allocates and takes a mutex:
// never call it from the data plane's poll loops (STYLE.md) — those count, and a control
// thread logs what the counters show.
#pragma once

#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace twincast::control::log {

// Level, its name in the line, and its syslog priority (the journal's PRIORITY field).
#define TWINCAST_LOG_LEVELS(X) \
  X(kDebug, "debug", 7)        \
  X(kInfo, "info", 6)          \
  X(kNotice, "notice", 5)      \
  X(kWarn, "warn", 4)          \
  X(kError, "error", 3)

enum class Level : std::uint8_t {
#define TWINCAST_X(e, s, p) e,
  TWINCAST_LOG_LEVELS(TWINCAST_X)
#undef TWINCAST_X
};

[[nodiscard]] constexpr std::string_view level_name(Level l) {
  switch (l) {
#define TWINCAST_X(e, s, p) \
  case Level::e:            \
    return s;
    TWINCAST_LOG_LEVELS(TWINCAST_X)
#undef TWINCAST_X
  }
  return "unknown";
}

[[nodiscard]] constexpr int level_priority(Level l) {
  switch (l) {
#define TWINCAST_X(e, s, p) \
  case Level::e:            \
    return p;
    TWINCAST_LOG_LEVELS(TWINCAST_X)
#undef TWINCAST_X
  }
  return 6;
}

// The fields whose values, with the cause, make a line's rate key.
inline constexpr std::string_view kSubjectFields[] = {"channel", "input", "srt_input", "output", "port", "multiplex"};

// One name=value pair. Names are written as given after mapping anything outside
// [a-z0-9_] to '_' (and a leading digit gets a '_' prefix); values are any bytes.
struct Field {
  Field(std::string_view n, std::string_view v) : name(n), value(v) {}
  Field(std::string_view n, const char* v) : name(n), value(v != nullptr ? v : "") {}  // not bool
  Field(std::string_view n, bool v) : name(n), value(v ? "true" : "false") {}
  template <std::integral T>
    requires(!std::same_as<T, bool> && !std::same_as<T, char>)
  Field(std::string_view n, T v) : name(n), value(std::to_string(v)) {}
  Field(std::string_view n, double v);  // shortest round-trip form

  std::string_view name;  // usually a literal: a Field lives for one call
  std::string value;
};

// What a sink receives: one event that passed the rate limit.
struct Record {
  Level level = Level::kInfo;
  std::string_view cause;
  std::span<const Field> fields;
  std::string_view message;
  std::uint64_t suppressed = 0;  // lines of this rate key dropped since the last one written
};

// The logfmt line, without a newline.
[[nodiscard]] std::string format(const Record& record);
// A logfmt value: bare when it is non-empty printable UTF-8 with no space, '"', '=' or
// '\'; otherwise double-quoted with \" \\ \n \r \t, and \u00XX for each other byte that is
// a control character or not part of printable UTF-8 (so the line is always printable UTF-8,
// and \u00XX reads back as that one byte).
void append_value(std::string& out, std::string_view value);

using Sink = std::function<void(const Record&)>;

// format() + '\n' to file descriptor 2 in one write(2).
[[nodiscard]] Sink stderr_sink();
// sd_journal_sendv: MESSAGE (the logfmt line), PRIORITY, SYSLOG_IDENTIFIER,
// TWINCAST_CAUSE, TWINCAST_<FIELD> for each field (upper-cased) and TWINCAST_SUPPRESSED.
// Falls back to stderr_sink when the journal refuses or libsystemd is not built in.
[[nodiscard]] Sink journal_sink();
// True when `journal_stream` ("DEVICE:INODE", the value of $JOURNAL_STREAM) names the file
// `fd` is open on: systemd's way to tell a service its stderr goes to the journal.
[[nodiscard]] bool is_journal_stream(int fd, const char* journal_stream);
// journal_sink() when stderr is the journal ($JOURNAL_STREAM), else stderr_sink().
[[nodiscard]] Sink default_sink();

using Clock = std::function<std::chrono::steady_clock::time_point()>;

struct Options {
  // At most one line per rate key per interval; 0: no limit (for reports that are useless
  // when incomplete, like every error of a configuration file).
  std::chrono::steady_clock::duration interval = std::chrono::seconds(10);
  Level min_level = Level::kInfo;  // lower levels are dropped (and not counted)
  Sink sink;                       // empty: default_sink()
  Clock clock;                     // empty: std::chrono::steady_clock::now
};

class Logger {
 public:
  explicit Logger(Options options = {});
  Logger(const Logger&) = delete;
  Logger& operator=(const Logger&) = delete;

  // Writes the line unless its rate key already wrote one less than `interval` ago, in
  // which case it is counted as suppressed. True when written.
  bool write(Level level, std::string_view cause, std::span<const Field> fields, std::string_view message);
  bool write(Level level, std::string_view cause, std::initializer_list<Field> fields, std::string_view message) {
    return write(level, cause, std::span<const Field>(fields.begin(), fields.size()), message);
  }

  // Lines dropped by the rate limit since this logger was made.
  [[nodiscard]] std::uint64_t suppressed_total() const;
  // The rate key of a line (exposed for tests): cause, then the subject fields' name=value.
  [[nodiscard]] static std::string rate_key(std::string_view cause, std::span<const Field> fields);

 private:
  struct KeyState {
    std::chrono::steady_clock::time_point last{};
    std::uint64_t suppressed = 0;
  };
  void prune(std::chrono::steady_clock::time_point now);

  Options options_;
  mutable std::mutex mutex_;  // keys_, suppressed_total_ and the sink (lines never interleave)
  std::map<std::string, KeyState, std::less<>> keys_;
  std::uint64_t suppressed_total_ = 0;
};

// The process's logger (default options, created on first use).
[[nodiscard]] Logger& process_logger();

// Shorthands on process_logger().
inline bool info(std::string_view cause, std::initializer_list<Field> fields, std::string_view message) {
  return process_logger().write(Level::kInfo, cause, fields, message);
}
inline bool notice(std::string_view cause, std::initializer_list<Field> fields, std::string_view message) {
  return process_logger().write(Level::kNotice, cause, fields, message);
}
inline bool warn(std::string_view cause, std::initializer_list<Field> fields, std::string_view message) {
  return process_logger().write(Level::kWarn, cause, fields, message);
}
inline bool error(std::string_view cause, std::initializer_list<Field> fields, std::string_view message) {
  return process_logger().write(Level::kError, cause, fields, message);
}

}  // namespace twincast::control::log
