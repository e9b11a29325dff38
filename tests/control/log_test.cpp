// The control plane's structured log: logfmt formatting and escaping (checked by parsing
// the lines back), rate limiting per cause and subject with an injected clock, suppressed
// counts, thread safety, the journal detection, and (as root, when no journald runs) the
// journal sink's datagrams as libsystemd sends them to a journal socket.
#include "twincast/control/log.hpp"

#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <thread>
#include <utility>
#include <vector>

#include "tests_common.hpp"

namespace lg = twincast::control::log;
namespace tt = twincast::test;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

// An independent logfmt reader: key=value pairs separated by one space; a value is bare up
// to the next space, or double-quoted with \" \\ \n \r \t \uXXXX escapes. nullopt when the
// line is not well-formed.
std::optional<std::vector<std::pair<std::string, std::string>>> parse_logfmt(const std::string& line) {
  std::vector<std::pair<std::string, std::string>> out;
  std::size_t i = 0;
  while (i < line.size()) {
    const std::size_t eq = line.find('=', i);
    if (eq == std::string::npos || eq == i) return std::nullopt;
    std::string key = line.substr(i, eq - i);
    if (key.find(' ') != std::string::npos || key.find('"') != std::string::npos) return std::nullopt;
    i = eq + 1;
    std::string value;
    if (i < line.size() && line[i] == '"') {
      ++i;
      bool closed = false;
      while (i < line.size()) {
        const char c = line[i++];
        if (c == '"') {
          closed = true;
          break;
        }
        if (static_cast<unsigned char>(c) < 0x20) return std::nullopt;  // raw control byte inside quotes
        if (c != '\\') {
          value += c;
          continue;
        }
        if (i >= line.size()) return std::nullopt;
        const char e = line[i++];
        switch (e) {
          case '"': value += '"'; break;
          case '\\': value += '\\'; break;
          case 'n': value += '\n'; break;
          case 'r': value += '\r'; break;
          case 't': value += '\t'; break;
          case 'u':
            if (i + 4 > line.size()) return std::nullopt;
            value += static_cast<char>(std::stoi(line.substr(i, 4), nullptr, 16));
            i += 4;
            break;
          default: return std::nullopt;
        }
      }
      if (!closed) return std::nullopt;
    } else {
      const std::size_t end = std::min(line.find(' ', i), line.size());
      value = line.substr(i, end - i);
      if (value.empty() || value.find('"') != std::string::npos || value.find('=') != std::string::npos) {
        return std::nullopt;
      }
      i = end;
    }
    out.emplace_back(std::move(key), std::move(value));
    if (i < line.size()) {
      if (line[i] != ' ') return std::nullopt;
      ++i;
    }
  }
  return out;
}

// A sink that keeps every record (as its formatted line) and checks that the logger never
// calls it from two threads at once.
struct Capture {
  std::vector<std::string> lines;
  std::atomic<int> inside{0};
  std::atomic<bool> overlapped{false};
  lg::Sink sink() {
    return [this](const lg::Record& r) {
      if (inside.fetch_add(1) != 0) overlapped = true;
      lines.push_back(lg::format(r));
      inside.fetch_sub(1);
    };
  }
};

// A clock the test moves by hand.
struct ManualClock {
  std::atomic<Clock::rep> ticks{0};
  lg::Clock clock() {
    return [this] { return Clock::time_point(Clock::duration(ticks.load())); };
  }
  void advance(Clock::duration d) { ticks += d.count(); }
};

std::string field(const std::string& line, const std::string& key) {
  auto kv = parse_logfmt(line);
  if (!kv) return "<unparsable>";
  for (const auto& [k, v] : *kv)
    if (k == key) return v;
  return "<absent>";
}

}  // namespace

TEST(Log, LineLayout) {
  const lg::Field fields[] = {{"channel", "news"}, {"input", "backup"}};
  const std::string line = lg::format(
      {.level = lg::Level::kWarn, .cause = "srt_auth", .fields = fields, .message = "wrong passphrase", .suppressed = 12});
  EXPECT_EQ(line, "level=warn cause=srt_auth channel=news input=backup msg=\"wrong passphrase\" suppressed=12");
  // No suppressed= when nothing was dropped; a bare message stays bare.
  EXPECT_EQ(lg::format({.level = lg::Level::kInfo, .cause = "start", .fields = {}, .message = "up"}),
            "level=info cause=start msg=up");
  EXPECT_EQ(lg::level_name(lg::Level::kError), "error");
  EXPECT_EQ(lg::level_priority(lg::Level::kWarn), 4);
  EXPECT_EQ(lg::level_priority(lg::Level::kDebug), 7);
}

TEST(Log, ValuesOfEveryType) {
  const lg::Field fields[] = {{"n", 42},          {"neg", -7},        {"u8", std::uint8_t{200}}, {"big", std::uint64_t{1} << 63},
                              {"yes", true},      {"ratio", 0.125},   {"cstr", "x y"},           {"null", static_cast<const char*>(nullptr)},
                              {"Odd Name!", "v"}, {"9lives", "cat"}};
  const std::string line = lg::format({.level = lg::Level::kInfo, .cause = "types", .fields = fields, .message = ""});
  EXPECT_EQ(line,
            "level=info cause=types n=42 neg=-7 u8=200 big=9223372036854775808 yes=true ratio=0.125 cstr=\"x y\" "
            "null=\"\" odd_name_=v _9lives=cat msg=\"\"");
}

TEST(Log, EscapingOfSpacesQuotesAndControlBytes) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"plain", "plain"},
      {"two words", "\"two words\""},
      {"say \"hi\"", "\"say \\\"hi\\\"\""},
      {"C:\\path", "\"C:\\\\path\""},
      {"a=b", "\"a=b\""},
      {"line1\nline2", "\"line1\\nline2\""},
      {"tab\there", "\"tab\\there\""},
      {"cr\r", "\"cr\\r\""},
      {std::string("nul\0x", 5), "\"nul\\u0000x\""},
      {"bell\x07", "\"bell\\u0007\""},
      {"del\x7f", "\"del\\u007f\""},
      {"", "\"\""},
      {"caf\xc3\xa9", "caf\xc3\xa9"},  // UTF-8 passes through
  };
  for (const auto& [raw, want] : cases) {
    std::string out;
    lg::append_value(out, raw);
    EXPECT_EQ(out, want) << raw;
  }
}

// journald keeps a MESSAGE that is not printable UTF-8 (an invalid sequence, or a C0 or C1
// control character) as binary: journalctl shows "[N blob data]" instead of the line. So
// any bytes in a value, e.g. a config error quoting a value cut after 60 bytes in the
// middle of an "é", must come out as printable UTF-8, and still read back exactly.
namespace {

// True when `s` is UTF-8 (shortest forms, no surrogates, at most U+10FFFF) without
// control characters (below U+0020, U+007F to U+009F): journald's "printable".
bool printable_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    const auto b = static_cast<unsigned char>(s[i]);
    std::size_t n = 1;
    std::uint32_t cp = b;
    if (b >= 0xf0 && b < 0xf8) {
      n = 4, cp = b & 0x07u;
    } else if (b >= 0xe0) {
      n = b < 0xf0 ? 3 : 0;
      cp = b & 0x0fu;
    } else if (b >= 0xc0) {
      n = 2, cp = b & 0x1fu;
    } else if (b >= 0x80) {
      return false;  // a continuation byte on its own
    }
    if (n == 0 || i + n > s.size()) return false;
    for (std::size_t k = 1; k < n; ++k) {
      const auto c = static_cast<unsigned char>(s[i + k]);
      if ((c & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (c & 0x3fu);
    }
    const std::uint32_t shortest = n == 1 ? 0 : n == 2 ? 0x80 : n == 3 ? 0x800 : 0x10000;
    if (cp < shortest || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f)) return false;
    i += n;
  }
  return true;
}

}  // namespace

TEST(Log, AnyBytesMakePrintableUtf8ThatReadsBackExactly) {
  const std::vector<std::string> values = {
      "T\xc3",                  // "Té" cut after the first byte of the é
      "\xe9t\xe9",              // Latin-1
      "\xff",                   // never in UTF-8
      "\x80x",                  // a lone continuation byte
      "\xc0\xaf",               // an overlong '/'
      "\xed\xa0\x80",           // a surrogate
      "\xf4\x90\x80\x80",       // beyond U+10FFFF
      "next\xc2\x85line",       // U+0085 NEL, a C1 control
      "\xc2\x9b""31m red",      // U+009B CSI: a terminal escape
  };
  for (const std::string& v : values) {
    const lg::Field fields[] = {{"file", v}};
    const std::string line =
        lg::format({.level = lg::Level::kError, .cause = "reload_refused", .fields = fields, .message = v});
    EXPECT_TRUE(printable_utf8(line)) << line;
    EXPECT_EQ(field(line, "file"), v) << line;
    EXPECT_EQ(field(line, "msg"), v) << line;
  }
  // Printable UTF-8 is written as it is, bare when nothing else asks for quotes.
  for (const std::string v : {"caf\xc3\xa9", "\xe6\x97\xa5\xe6\x9c\xac", "\xf0\x9f\x93\xba"}) {
    std::string out;
    lg::append_value(out, v);
    EXPECT_EQ(out, v);
    EXPECT_TRUE(printable_utf8(out)) << out;
  }
}

TEST(Log, RandomValuesReadBackExactlyAndStayOnOneLine) {
  std::mt19937 rng(7);
  const std::string alphabet = std::string("ab =\"\\\n\r\t'x") + std::string(1, '\0') + "\x01\x1f\x7f\xc3\xa9";
  for (int n = 0; n < 2000; ++n) {
    std::string value;
    const auto len = rng() % 12;
    for (unsigned k = 0; k < len; ++k) value += alphabet[rng() % alphabet.size()];
    std::string message;
    for (unsigned k = 0; k < rng() % 6; ++k) message += alphabet[rng() % alphabet.size()];
    const lg::Field fields[] = {{"channel", value}, {"peer", "10.0.0.1:4000"}};
    const std::string line =
        lg::format({.level = lg::Level::kNotice, .cause = "fuzz", .fields = fields, .message = message, .suppressed = 3});
    ASSERT_EQ(line.find('\n'), std::string::npos) << line;
    EXPECT_TRUE(printable_utf8(line)) << line;
    const auto kv = parse_logfmt(line);
    ASSERT_TRUE(kv.has_value()) << line;
    ASSERT_EQ(kv->size(), 6U) << line;
    EXPECT_EQ((*kv)[0], (std::pair<std::string, std::string>{"level", "notice"}));
    EXPECT_EQ((*kv)[1], (std::pair<std::string, std::string>{"cause", "fuzz"}));
    EXPECT_EQ((*kv)[2].second, value) << line;
    EXPECT_EQ((*kv)[3].second, "10.0.0.1:4000");
    EXPECT_EQ((*kv)[4].second, message) << line;
    EXPECT_EQ((*kv)[5], (std::pair<std::string, std::string>{"suppressed", "3"}));
  }
}

TEST(Log, RateLimitPerCauseAndSubjectWithSuppressedCount) {
  Capture cap;
  ManualClock clk;
  lg::Logger logger({.interval = 10s, .min_level = lg::Level::kInfo, .sink = cap.sink(), .clock = clk.clock()});
  auto reject = [&](const char* input, const char* peer) {
    return logger.write(lg::Level::kWarn, "srt_reject", {{"channel", "news"}, {"input", input}, {"peer", peer}},
                        "rejected caller");
  };
  EXPECT_TRUE(reject("backup", "10.0.0.9:1"));
  // Same cause and subject, another peer: the same key, dropped and counted.
  clk.advance(1s);
  EXPECT_FALSE(reject("backup", "10.0.0.9:2"));
  clk.advance(1s);
  EXPECT_FALSE(reject("backup", "10.0.0.9:3"));
  // Another input, another cause: keys of their own.
  EXPECT_TRUE(reject("main", "10.0.0.8:1"));
  EXPECT_TRUE(logger.write(lg::Level::kWarn, "srt_connect_failed", {{"channel", "news"}, {"input", "backup"}}, "refused"));
  // Just before the interval ends: still dropped; at the interval: written, with the count.
  clk.advance(8s - 1ns);
  EXPECT_FALSE(reject("backup", "10.0.0.9:4"));
  clk.advance(1ns);
  EXPECT_TRUE(reject("backup", "10.0.0.9:5"));
  EXPECT_EQ(logger.suppressed_total(), 3U);
  // The count restarts after each written line.
  clk.advance(10s);
  EXPECT_TRUE(reject("backup", "10.0.0.9:6"));

  ASSERT_EQ(cap.lines.size(), 5U);
  EXPECT_EQ(field(cap.lines[0], "peer"), "10.0.0.9:1");
  EXPECT_EQ(field(cap.lines[0], "suppressed"), "<absent>");
  EXPECT_EQ(field(cap.lines[1], "input"), "main");
  EXPECT_EQ(field(cap.lines[2], "cause"), "srt_connect_failed");
  EXPECT_EQ(field(cap.lines[3], "peer"), "10.0.0.9:5");
  EXPECT_EQ(field(cap.lines[3], "suppressed"), "3");
  EXPECT_EQ(field(cap.lines[4], "suppressed"), "<absent>");
  EXPECT_EQ(cap.lines[3],
            "level=warn cause=srt_reject channel=news input=backup peer=10.0.0.9:5 msg=\"rejected caller\" suppressed=3");
}

TEST(Log, RateKeyIsTheCauseAndTheSubjectFields) {
  const lg::Field a[] = {{"channel", "news"}, {"peer", "1.2.3.4:5"}, {"srt_input", 2}};
  const lg::Field b[] = {{"reason", "other"}, {"channel", "news"}, {"srt_input", 2}};
  const lg::Field c[] = {{"channel", "news"}, {"srt_input", 3}};
  EXPECT_EQ(lg::Logger::rate_key("x", a), lg::Logger::rate_key("x", b));
  EXPECT_NE(lg::Logger::rate_key("x", a), lg::Logger::rate_key("x", c));
  EXPECT_NE(lg::Logger::rate_key("x", a), lg::Logger::rate_key("y", a));
  // A value with a space cannot impersonate two fields.
  const lg::Field d[] = {{"channel", "a input=b"}};
  const lg::Field e[] = {{"channel", "a"}, {"input", "b"}};
  EXPECT_NE(lg::Logger::rate_key("x", d), lg::Logger::rate_key("x", e));
}

TEST(Log, MinimumLevelDropsWithoutCounting) {
  Capture cap;
  ManualClock clk;
  lg::Logger logger({.interval = 10s, .min_level = lg::Level::kWarn, .sink = cap.sink(), .clock = clk.clock()});
  EXPECT_FALSE(logger.write(lg::Level::kInfo, "noise", {}, "dropped"));
  EXPECT_TRUE(logger.write(lg::Level::kError, "noise", {}, "kept"));
  EXPECT_EQ(logger.suppressed_total(), 0U);
  ASSERT_EQ(cap.lines.size(), 1U);
  EXPECT_EQ(cap.lines[0], "level=error cause=noise msg=kept");
}

TEST(Log, ThreadsNeverInterleaveAndEveryDropIsCounted) {
  Capture cap;
  ManualClock clk;
  lg::Logger logger({.interval = 10s, .min_level = lg::Level::kInfo, .sink = cap.sink(), .clock = clk.clock()});
  constexpr int kThreads = 8;
  constexpr int kPerThread = 5000;
  constexpr int kKeys = 16;
  std::atomic<int> written{0};
  auto hammer = [&](int t) {
    for (int n = 0; n < kPerThread; ++n) {
      const int key = (n + t) % kKeys;
      if (logger.write(lg::Level::kWarn, "storm", {{"channel", "ch" + std::to_string(key)}, {"seq", n}}, "busy")) {
        ++written;
      }
      if (n % 1000 == 999) clk.advance(1ms);  // time moves, but never a whole interval
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) threads.emplace_back(hammer, t);
  for (auto& th : threads) th.join();
  EXPECT_FALSE(cap.overlapped.load());
  EXPECT_EQ(written.load(), kKeys);  // one line per key
  EXPECT_EQ(logger.suppressed_total(), static_cast<std::uint64_t>(kThreads * kPerThread - kKeys));
  // After the interval, one line per key carries that key's drops: they add up exactly.
  clk.advance(10s);
  for (int key = 0; key < kKeys; ++key) {
    EXPECT_TRUE(logger.write(lg::Level::kWarn, "storm", {{"channel", "ch" + std::to_string(key)}}, "busy"));
  }
  ASSERT_EQ(cap.lines.size(), static_cast<std::size_t>(2 * kKeys));
  std::uint64_t reported = 0;
  for (std::size_t i = kKeys; i < cap.lines.size(); ++i) reported += std::stoull(field(cap.lines[i], "suppressed"));
  EXPECT_EQ(reported, static_cast<std::uint64_t>(kThreads * kPerThread - kKeys));
  for (const auto& l : cap.lines) EXPECT_TRUE(parse_logfmt(l).has_value()) << l;
}

TEST(Log, ManyKeysArePrunedOnlyWhenIdleAndSettled) {
  Capture cap;
  ManualClock clk;
  lg::Logger logger({.interval = 1s, .min_level = lg::Level::kInfo, .sink = cap.sink(), .clock = clk.clock()});
  // A key with a pending suppressed count survives any number of other keys.
  EXPECT_TRUE(logger.write(lg::Level::kWarn, "flap", {{"input", "keep"}}, "x"));
  EXPECT_FALSE(logger.write(lg::Level::kWarn, "flap", {{"input", "keep"}}, "x"));
  for (int i = 0; i < 10000; ++i) {
    clk.advance(1s);
    logger.write(lg::Level::kWarn, "flap", {{"input", std::to_string(i)}}, "x");
  }
  EXPECT_TRUE(logger.write(lg::Level::kWarn, "flap", {{"input", "keep"}}, "x"));
  EXPECT_EQ(field(cap.lines.back(), "suppressed"), "1");
}

TEST(Log, StderrSinkWritesOneLine) {
  testing::internal::CaptureStderr();
  lg::Logger logger({.interval = 10s, .min_level = lg::Level::kInfo, .sink = lg::stderr_sink(), .clock = {}});
  logger.write(lg::Level::kError, "config", {{"file", "/etc/twincast/a b.yaml"}}, "cannot read");
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(err, "level=error cause=config file=\"/etc/twincast/a b.yaml\" msg=\"cannot read\"\n");
}

TEST(Log, JournalStreamNamesTheFileOfTheDescriptor) {
  const auto dir = tt::temp_dir("log");
  const auto path = dir / "stream";
  std::ofstream(path) << "x";
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  struct stat st {};
  ASSERT_EQ(::fstat(fd, &st), 0);
  const std::string right = std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
  const std::string wrong_ino = std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino + 1);
  const std::string wrong_dev = std::to_string(st.st_dev + 1) + ":" + std::to_string(st.st_ino);
  EXPECT_TRUE(lg::is_journal_stream(fd, right.c_str()));
  EXPECT_FALSE(lg::is_journal_stream(fd, wrong_ino.c_str()));
  EXPECT_FALSE(lg::is_journal_stream(fd, wrong_dev.c_str()));
  EXPECT_FALSE(lg::is_journal_stream(fd, (right + "x").c_str()));
  EXPECT_FALSE(lg::is_journal_stream(fd, "garbage"));
  EXPECT_FALSE(lg::is_journal_stream(fd, ""));
  EXPECT_FALSE(lg::is_journal_stream(fd, nullptr));
  EXPECT_FALSE(lg::is_journal_stream(-1, right.c_str()));
  ::close(fd);
  std::filesystem::remove_all(dir);
}

// libsystemd sends journal entries as datagrams to /run/systemd/journal/socket: lines of
// NAME=value, or NAME\n<64-bit little-endian length><bytes>\n for values with newlines.
// With no journald on this machine and root rights, the test binds that socket itself and
// reads what journal_sink() sends; otherwise it checks the stderr fallback.
namespace {

std::map<std::string, std::string> parse_journal_datagram(const std::string& d) {
  std::map<std::string, std::string> out;
  std::size_t i = 0;
  while (i < d.size()) {
    const std::size_t nl = d.find('\n', i);
    if (nl == std::string::npos) break;
    const std::size_t eq = d.find('=', i);
    if (eq != std::string::npos && eq < nl) {
      out[d.substr(i, eq - i)] = d.substr(eq + 1, nl - eq - 1);
      i = nl + 1;
    } else {
      const std::string name = d.substr(i, nl - i);
      std::uint64_t len = 0;
      if (nl + 1 + 8 > d.size()) break;
      std::memcpy(&len, d.data() + nl + 1, 8);
      out[name] = d.substr(nl + 9, len);
      i = nl + 9 + len + 1;
    }
  }
  return out;
}

}  // namespace

TEST(Log, JournalSinkSendsPriorityAndFields) {
  const std::filesystem::path socket_dir = "/run/systemd/journal";
  const std::filesystem::path socket_path = socket_dir / "socket";
  std::error_code ec;
  if (std::filesystem::exists(socket_path, ec) || ::geteuid() != 0) {
    // Either a real journal (nothing to read back) or no rights to stand in for one: the
    // sink must at least not lose the line. With a real journald it goes there instead.
    if (std::filesystem::exists(socket_path, ec)) GTEST_SKIP() << "a journald runs here; not reading it back";
    testing::internal::CaptureStderr();
    lg::journal_sink()({.level = lg::Level::kWarn, .cause = "x", .fields = {}, .message = "fallback"});
    EXPECT_EQ(testing::internal::GetCapturedStderr(), "level=warn cause=x msg=fallback\n");
    return;
  }
  const bool made_dir = !std::filesystem::exists(socket_dir, ec);
  std::filesystem::create_directories(socket_dir);
  const int s = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(s, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, socket_path.c_str(), sizeof addr.sun_path - 1);
  if (::bind(s, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    const int e = errno;  // another run of this test holds it
    ::close(s);
    GTEST_SKIP() << "cannot bind " << socket_path << ": " << std::strerror(e);
  }
  timeval tv{2, 0};
  ::setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);

  const lg::Field fields[] = {{"channel", "news"}, {"input", "backup"}, {"reason", "two\nlines"}};
  lg::journal_sink()(
      {.level = lg::Level::kWarn, .cause = "srt_reject", .fields = fields, .message = "rejected caller", .suppressed = 4});
  std::string datagram(65536, '\0');
  const ssize_t n = ::recv(s, datagram.data(), datagram.size(), 0);
  ::close(s);
  std::filesystem::remove(socket_path);
  if (made_dir) std::filesystem::remove(socket_dir);
  ASSERT_GT(n, 0) << "nothing reached the journal socket";
  datagram.resize(static_cast<std::size_t>(n));
  const auto entry = parse_journal_datagram(datagram);
  EXPECT_EQ(entry.at("PRIORITY"), "4");
  EXPECT_EQ(entry.at("TWINCAST_CAUSE"), "srt_reject");
  EXPECT_EQ(entry.at("TWINCAST_CHANNEL"), "news");
  EXPECT_EQ(entry.at("TWINCAST_INPUT"), "backup");
  EXPECT_EQ(entry.at("TWINCAST_REASON"), "two\nlines");
  EXPECT_EQ(entry.at("TWINCAST_SUPPRESSED"), "4");
  EXPECT_EQ(entry.at("SYSLOG_IDENTIFIER"), "control_log_test");
  EXPECT_EQ(entry.at("MESSAGE"),
            "level=warn cause=srt_reject channel=news input=backup reason=\"two\\nlines\" msg=\"rejected caller\" "
            "suppressed=4");
}
