// twincastctl, the built binary, against an in-process REST API (HttpServer + Api over the
// fake backend of fake_backend.hpp): what it prints on stdout and stderr, its exit codes,
// the token handling, an unreachable or silent API, and servers answering nonsense.
#include "twincast/control/ctl.hpp"

#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <boost/asio.hpp>
#include <boost/json.hpp>

#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "control/fake_backend.hpp"
#include "tests_common.hpp"
#include "twincast/control/api.hpp"
#include "twincast/control/config.hpp"
#include "twincast/control/http_server.hpp"
#include "twincast/control/metrics.hpp"

namespace fs = std::filesystem;
namespace tc = twincast::control;
namespace tt = twincast::test;
namespace json = boost::json;
using tcp = boost::asio::ip::tcp;
using namespace std::chrono_literals;

namespace {

constexpr const char* kToken = "ctl-t0ken-0123456789abcdef-XYZ";
constexpr const char* kWrongToken = "wrong-t0ken-0123456789abcdef";

fs::path source_dir() {
  if (const char* d = std::getenv("TWINCAST_SOURCE_DIR")) return d;
  return fs::path(__FILE__).parent_path().parent_path().parent_path();
}

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

struct CtlRun {
  int exit_code = -1;  // -1: killed by a signal
  std::string out;
  std::string err;
  double seconds = 0;
};

json::value parse(const std::string& text) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  EXPECT_FALSE(ec) << "not JSON: " << text;
  return v;
}

// The lines of `text` that contain `needle`.
std::vector<std::string> lines_with(const std::string& text, const std::string& needle) {
  std::vector<std::string> r;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.find(needle) != std::string::npos) r.push_back(line);
  }
  return r;
}

// A TCP port on loopback where nothing listens: bound (without SO_REUSEADDR) and not
// listening while the object lives, so a connect is refused and no one else can take the
// port meanwhile (a port bound then closed could be taken by another test's listener).
class ClosedPort {
 public:
  ClosedPort() : socket_(ioc_) {
    socket_.open(tcp::v4());
    socket_.bind(tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0));
  }
  [[nodiscard]] std::uint16_t port() const { return socket_.local_endpoint().port(); }

 private:
  boost::asio::io_context ioc_;
  tcp::socket socket_;
};

// Accepts one connection on `a` (waiting up to 60 s for it) and never answers: the seconds
// from the accept to the client's close, -1 when no connection came or it stayed open 60 s.
// Taken from inside, this excludes the start of the twincastctl process (a shell, exec, the
// dynamic loader and, in the Sanitize build, ASan's start), which can take seconds on a
// loaded machine.
double seconds_held_until_closed(tcp::acceptor& a) {
  pollfd p{a.native_handle(), POLLIN, 0};
  if (::poll(&p, 1, 60'000) != 1) return -1;
  tcp::socket s = a.accept();
  const auto t0 = std::chrono::steady_clock::now();
  timeval tv{60, 0};
  ::setsockopt(s.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::array<char, 256> buf{};
  boost::system::error_code ec;
  while (!ec) s.read_some(boost::asio::buffer(buf), ec);  // the request, then EOF (or a reset)
  if (ec != boost::asio::error::eof && ec != boost::asio::error::connection_reset) return -1;
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

class CtlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = tt::temp_dir("ctl");
    token_file_ = dir_ / "token";
    std::ofstream(token_file_) << kToken << "\n";
    wrong_token_file_ = dir_ / "wrong-token";
    std::ofstream(wrong_token_file_) << kWrongToken << "\n";
    api_ = std::make_unique<tc::Api>(backend_, registry_, tc::ApiOptions{.token_file = token_file_});
    api_->add_routes(server_);
    server_.listen("127.0.0.1:0");
    server_.start();
    address_ = "127.0.0.1:" + std::to_string(server_.ports().at(0));
  }

  void TearDown() override {
    server_.stop();
    // Whatever happened, neither token ever left the program (nor did the backend's secret).
    EXPECT_EQ(everything_printed_.find(kToken), std::string::npos);
    EXPECT_EQ(everything_printed_.find(kWrongToken), std::string::npos);
    EXPECT_EQ(everything_printed_.find(tt::kFakePassphrase), std::string::npos);
    // Under the Sanitize build a finding exits 1, which some cases expect: look for the report.
    EXPECT_EQ(everything_printed_.find("Sanitizer"), std::string::npos) << everything_printed_;
    EXPECT_EQ(everything_printed_.find("runtime error:"), std::string::npos) << everything_printed_;
    fs::remove_all(dir_);
  }

  // Runs the built twincastctl with `args` (each shell-quoted), TWINCAST_API and
  // TWINCAST_TOKEN_FILE unset unless `env` ("NAME=value ...", already quoted) sets them.
  CtlRun ctl(const std::vector<std::string>& args, const std::string& env = "") {
    const fs::path out = dir_ / "stdout";
    const fs::path err = dir_ / "stderr";
    std::string cmd = "(env -u TWINCAST_API -u TWINCAST_TOKEN_FILE " + env + " " +
                      tt::shell_quote(tt::tool("twincastctl").string());
    // append() rather than operator+: GCC 12 -Wrestrict misfires on `s += " " + t` here.
    for (const auto& a : args) cmd.append(" ").append(tt::shell_quote(a));
    cmd.append(" >").append(tt::shell_quote(out.string())).append(" 2>").append(tt::shell_quote(err.string())).append(")");
    const auto t0 = std::chrono::steady_clock::now();
    tt::RunResult r = tt::run(cmd);
    CtlRun c;
    c.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    c.exit_code = r.exit_code;
    c.out = slurp(out);
    c.err = slurp(err) + r.out;  // r.out: only the shell's own complaints, if any
    everything_printed_ += c.out + c.err;
    return c;
  }

  // ctl() with --api pointing at the test server.
  CtlRun api(std::vector<std::string> args, const std::string& env = "") {
    args.insert(args.begin(), {"--api", address_});
    return ctl(args, env);
  }

  void make_healthy() {
    std::lock_guard lock(backend_.mutex_);
    for (auto& c : backend_.channels_) {
      c.alarms.clear();
      c.state = "ok";
    }
  }

  fs::path dir_;
  fs::path token_file_;
  fs::path wrong_token_file_;
  tt::FakeBackend backend_;
  tc::metrics::Registry registry_;
  std::unique_ptr<tc::Api> api_;
  tc::HttpServer server_;
  std::string address_;
  std::string everything_printed_;
};

}  // namespace

// ---------------------------------------------------------------------------------------
// In-process helpers

TEST(CtlFormat, Bitrate) {
  EXPECT_EQ(tc::format_bitrate(4'500'000), "4.50 Mbit/s");
  EXPECT_EQ(tc::format_bitrate(0), "0 bit/s");
  EXPECT_EQ(tc::format_bitrate(950), "950 bit/s");
  EXPECT_EQ(tc::format_bitrate(999.6), "1.0 kbit/s");
  EXPECT_EQ(tc::format_bitrate(812'000), "812.0 kbit/s");
  EXPECT_EQ(tc::format_bitrate(999'999), "1.00 Mbit/s");
  EXPECT_EQ(tc::format_bitrate(38'123'456), "38.12 Mbit/s");
  EXPECT_EQ(tc::format_bitrate(1.2e9), "1.20 Gbit/s");
  EXPECT_EQ(tc::format_bitrate(-1), "-");
  EXPECT_EQ(tc::format_bitrate(std::nan("")), "-");
  EXPECT_EQ(tc::format_bitrate(INFINITY), "-");
}

TEST(CtlFormat, ExitCodesAreDescribed) {
  EXPECT_EQ(static_cast<int>(tc::CtlExit::kOk), 0);
  EXPECT_EQ(static_cast<int>(tc::CtlExit::kRefused), 1);
  EXPECT_EQ(static_cast<int>(tc::CtlExit::kUsage), 2);
  EXPECT_EQ(static_cast<int>(tc::CtlExit::kUnreachable), 3);
  EXPECT_EQ(static_cast<int>(tc::CtlExit::kAuth), 4);
  EXPECT_EQ(static_cast<int>(tc::CtlExit::kNotFound), 5);
  for (int i = 0; i <= 5; ++i) EXPECT_FALSE(tc::ctl_exit_description(static_cast<tc::CtlExit>(i)).empty()) << i;
}

// ---------------------------------------------------------------------------------------
// status

TEST_F(CtlTest, StatusTableWithAlarmsExits1) {
  CtlRun r = api({"status"});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  // Header and one line per channel, nothing else on stdout.
  std::istringstream in(r.out);
  std::vector<std::string> lines;
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  ASSERT_EQ(lines.size(), 3U) << r.out;
  EXPECT_EQ(lines[0].rfind("ID", 0), 0U) << lines[0];
  const std::string& news = lines[1];
  const std::string& sport = lines[2];
  EXPECT_EQ(news.rfind("news ", 0), 0U) << news;
  EXPECT_NE(news.find("News HD"), std::string::npos);
  EXPECT_NE(news.find("4.50 Mbit/s"), std::string::npos);
  EXPECT_NE(news.find("  main  "), std::string::npos);
  // The alarm is shown, with the API's redaction of the passphrase.
  EXPECT_NE(news.find("backup: SRT auth failed (passphrase ***)"), std::string::npos) << news;
  EXPECT_EQ(sport.rfind("sport", 0), 0U);
  EXPECT_NE(sport.find("Sport \"Live\""), std::string::npos);
  EXPECT_NE(sport.find("0 bit/s"), std::string::npos);  // sport's bitrate is 0, not absent
  // Aligned columns: every header label starts where its values start.
  for (const char* col : {"STATE", "INPUT", "ALARMS"}) {
    const auto x = lines[0].find(col);
    ASSERT_NE(x, std::string::npos) << col;
    EXPECT_NE(news[x], ' ') << col << "\n" << r.out;
    EXPECT_EQ(news[x - 1], ' ') << col << "\n" << r.out;
    EXPECT_NE(sport[x], ' ') << col << "\n" << r.out;
  }
  EXPECT_EQ(news.substr(lines[0].find("STATE"), 2), "ok");
  EXPECT_EQ(sport.substr(lines[0].find("STATE"), 4), "down");
  EXPECT_EQ(sport.substr(lines[0].find("INPUT"), 1), "-");
  // Bitrates are right-aligned: BITRATE's column ends where the values end.
  const auto bitrate_end = lines[0].find("BITRATE") + 7;
  EXPECT_EQ(news.substr(bitrate_end - 6, 6), "Mbit/s") << r.out;
  EXPECT_EQ(sport.substr(bitrate_end - 5, 5), "bit/s") << r.out;
  // Why the exit code is 1, on stderr.
  EXPECT_NE(r.err.find("2 of 2 channels need attention"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("news (1 alarm)"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("sport (down)"), std::string::npos) << r.err;
  EXPECT_EQ(r.out.find("twincastctl:"), std::string::npos);
}

TEST_F(CtlTest, StatusHealthyExits0) {
  make_healthy();
  CtlRun r = api({"status"});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_TRUE(r.err.empty()) << r.err;
  EXPECT_EQ(lines_with(r.out, "news").size(), 1U);
  EXPECT_EQ(lines_with(r.out, "sport").size(), 1U);
  // One channel degraded without an alarm is enough for 1.
  {
    std::lock_guard lock(backend_.mutex_);
    backend_.channels_[1].state = "degraded";
  }
  r = api({"status"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("sport (degraded)"), std::string::npos) << r.err;
  // No channels at all: healthy, said on stderr.
  {
    std::lock_guard lock(backend_.mutex_);
    backend_.channels_.clear();
  }
  r = api({"status"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_TRUE(r.out.empty());
  EXPECT_NE(r.err.find("no channels"), std::string::npos);
}

TEST_F(CtlTest, StatusLiveValuesFollowTheBackend) {
  make_healthy();
  {
    std::lock_guard lock(backend_.mutex_);
    backend_.channels_[0].bitrate_bps = 812'000;
    backend_.channels_[0].active_input = "backup";
  }
  CtlRun r = api({"status"});
  auto news = lines_with(r.out, "news");
  ASSERT_EQ(news.size(), 1U);
  EXPECT_NE(news[0].find("812.0 kbit/s"), std::string::npos) << news[0];
  EXPECT_NE(news[0].find("backup"), std::string::npos);
}

TEST_F(CtlTest, JsonIsTheApisAnswer) {
  CtlRun r = api({"--json", "status"});
  EXPECT_EQ(r.exit_code, 1);  // the exit code still tells health
  json::value v = parse(r.out);
  ASSERT_TRUE(v.is_object());
  ASSERT_EQ(v.at("channels").as_array().size(), 2U);
  EXPECT_EQ(v.at("channels").as_array()[0].at("bitrate_bps").to_number<double>(), 4'500'000);

  r = api({"channel", "sport", "--json"});  // options may follow the command
  EXPECT_EQ(r.exit_code, 1);
  v = parse(r.out);
  EXPECT_EQ(v.at("id").as_string(), "sport");
  EXPECT_EQ(v.at("inputs").as_array()[0].at("kind").as_string(), "rtp");

  make_healthy();
  r = api({"--json", "status"});
  EXPECT_EQ(r.exit_code, 0);
  parse(r.out);
  r = api({"--json", "--token-file", token_file_.string(), "switch", "news", "backup"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(parse(r.out).at("active_input").as_string(), "backup");
  r = api({"--json", "--token-file", token_file_.string(), "reload"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(parse(r.out).at("status").as_string(), "reloaded");
}

// ---------------------------------------------------------------------------------------
// channel

TEST_F(CtlTest, ChannelDetail) {
  CtlRun r = api({"channel", "news"});
  EXPECT_EQ(r.exit_code, 1) << r.err;  // news has an alarm
  const std::string& o = r.out;
  EXPECT_EQ(o.rfind("channel news (News HD)\n", 0), 0U) << o;
  EXPECT_EQ(lines_with(o, "active input")[0], "  active input  main");
  EXPECT_EQ(lines_with(o, "bitrate")[0], "  bitrate       4.50 Mbit/s");
  EXPECT_EQ(lines_with(o, "switches")[0], "  switches      3");
  EXPECT_NE(o.find("  remux         dropped by rule 40, at resync 120, corrupted 3; discontinuities marked 4; EIT sections lost 2\n"),
            std::string::npos)
      << o;
  EXPECT_NE(o.find("  packets       in 1000, out 990\n"), std::string::npos) << o;
  EXPECT_NE(o.find("  alarms        backup: SRT auth failed (passphrase ***)\n"), std::string::npos) << o;
  // Inputs: kind, packets, bitrate, the non-zero TR 101 290 counts only, MDI, SRT.
  EXPECT_NE(o.find("input main (udp), active, ok\n"), std::string::npos) << o;
  EXPECT_NE(o.find("600 packets, 4.40 Mbit/s, last packet 0.002 s ago"), std::string::npos) << o;
  auto tr = lines_with(o, "TR 101 290");
  ASSERT_EQ(tr.size(), 2U) << o;
  EXPECT_NE(tr[0].find("Continuity_count_error 7"), std::string::npos) << tr[0];
  EXPECT_NE(tr[0].find("PCR_accuracy_error 2"), std::string::npos) << tr[0];
  EXPECT_EQ(tr[0].find("TS_sync_loss"), std::string::npos) << tr[0];
  EXPECT_NE(tr[1].find("no errors"), std::string::npos) << tr[1];
  EXPECT_NE(o.find("MDI           DF 12.5 ms, MLR 0.50 packets/s"), std::string::npos) << o;
  EXPECT_NE(o.find("PCR           jitter 2.50 ms, accuracy 250 ns"), std::string::npos) << o;
  EXPECT_NE(o.find("PCR           jitter 0.40 ms, accuracy not measured (variable rate)"), std::string::npos) << o;
  EXPECT_NE(o.find("input backup (srt), standby, down\n"), std::string::npos) << o;
  EXPECT_NE(o.find("0 packets, 0 bit/s, nothing received yet"), std::string::npos) << o;
  EXPECT_NE(o.find("SRT           connected, rtt 35.0 ms, lost 10, retransmitted 9, recovered 8, dropped 1, ring drops 6"),
            std::string::npos)
      << o;
  // Outputs and HLS.
  EXPECT_NE(o.find("output 239.1.1.1:5000\n"), std::string::npos) << o;
  EXPECT_NE(o.find("140 datagrams, 980 packets, 184240 bytes, 2 dropped\n  queue drops   7 packets (the pacer fell behind)\n"),
            std::string::npos)
      << o;
  // 140 timed, sum 12.3 ms -> mean 88 us; 138 of 140 (98.6%) within 500 us, 139 (99.3%) within 1 ms.
  EXPECT_NE(o.find("pacing        140 datagrams timed, mean 88 us late, 99% within 1.0 ms"), std::string::npos) << o;
  EXPECT_NE(o.find("hls serving, 42 segments, last segment 1.5 s ago\n"), std::string::npos) << o;
  EXPECT_NE(r.err.find("channel news needs attention: 1 alarm"), std::string::npos) << r.err;

  // sport: down, no MDI yet, no SRT block, no outputs, HLS off.
  r = api({"channel", "sport"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.out.find("MDI           not measured yet"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("PCR           not measured yet"), std::string::npos) << r.out;
  EXPECT_TRUE(lines_with(r.out, "SRT").empty()) << r.out;
  EXPECT_TRUE(lines_with(r.out, "output").empty()) << r.out;
  EXPECT_NE(r.out.find("hls disabled"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.rfind("channel sport (Sport \"Live\")\n", 0), 0U) << r.out;
  EXPECT_NE(r.out.find("input primary (rtp), standby\n"), std::string::npos) << r.out;  // no state given
  EXPECT_NE(r.out.find("RTP           lost 3, reordered 11, duplicates 2 datagrams"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("sport needs attention: down"), std::string::npos) << r.err;

  make_healthy();
  r = api({"channel", "news"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("  alarms        none\n"), std::string::npos) << r.out;
  EXPECT_TRUE(r.err.empty()) << r.err;
}

// An HLS channel that has not made a segment yet: the API's last_segment_age_s is 0 then
// ("0 when none"), which is no reason to tell the operator a segment was just made.
TEST_F(CtlTest, ChannelDetailWithoutAnHlsSegmentYetSaysNoAge) {
  {
    std::lock_guard lock(backend_.mutex_);
    backend_.channels_[0].hls.state = "waiting";
    backend_.channels_[0].hls.segments = 0;
    backend_.channels_[0].hls.last_segment_age_s = 0;
  }
  CtlRun r = api({"channel", "news"});
  EXPECT_NE(r.out.find("hls waiting, 0 segments\n"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("last segment"), std::string::npos) << r.out;
}

TEST_F(CtlTest, UnknownChannelExits5) {
  CtlRun r = api({"channel", "nope"});
  EXPECT_EQ(r.exit_code, 5);
  EXPECT_TRUE(r.out.empty());
  EXPECT_NE(r.err.find("no channel 'nope' (HTTP 404)"), std::string::npos) << r.err;
  // Names are percent-encoded into the path: a slash or a space cannot reach another route.
  r = api({"channel", "news/switch"});
  EXPECT_EQ(r.exit_code, 5) << r.err;
  EXPECT_NE(r.err.find("no channel 'news/switch'"), std::string::npos) << r.err;
  r = api({"channel", "a b?c#d"});
  EXPECT_EQ(r.exit_code, 5) << r.err;
  EXPECT_NE(r.err.find("no channel 'a b?c#d'"), std::string::npos) << r.err;
}

// ---------------------------------------------------------------------------------------
// switch, reload and the token

TEST_F(CtlTest, SwitchWithTheToken) {
  CtlRun r = api({"--token-file", token_file_.string(), "switch", "news", "backup"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "channel news: active input is now backup\n");
  EXPECT_TRUE(r.err.empty()) << r.err;
  ASSERT_EQ(backend_.switches_.size(), 1U);
  EXPECT_EQ(backend_.switches_[0], (std::pair<std::string, std::string>{"news", "backup"}));
  // The token file from the environment, and --name=value.
  r = ctl({"--api=" + address_, "switch", "news", "main"}, "TWINCAST_TOKEN_FILE=" + tt::shell_quote(token_file_.string()));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  ASSERT_EQ(backend_.switches_.size(), 2U);
  EXPECT_EQ(backend_.switches_[1].second, "main");
  // --token-file wins over the environment.
  r = api({"--token-file", wrong_token_file_.string(), "switch", "news", "main"},
          "TWINCAST_TOKEN_FILE=" + tt::shell_quote(token_file_.string()));
  EXPECT_EQ(r.exit_code, 4);
}

TEST_F(CtlTest, SwitchRefusals) {
  const std::string tf = token_file_.string();
  // A wrong token: 401 -> 4, and the file is named, not its content.
  CtlRun r = api({"--token-file", wrong_token_file_.string(), "switch", "news", "backup"});
  EXPECT_EQ(r.exit_code, 4);
  EXPECT_NE(r.err.find("invalid bearer token (HTTP 401)"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(wrong_token_file_.string()), std::string::npos) << r.err;
  // A token file that does not exist, or is empty, or none at all: 4 before any request.
  r = api({"--token-file", (dir_ / "missing").string(), "switch", "news", "backup"});
  EXPECT_EQ(r.exit_code, 4);
  EXPECT_NE(r.err.find("cannot read the token file '" + (dir_ / "missing").string() + "'"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("No such file or directory"), std::string::npos) << r.err;
  std::ofstream(dir_ / "empty") << "\n\n";
  r = api({"--token-file", (dir_ / "empty").string(), "switch", "news", "backup"});
  EXPECT_EQ(r.exit_code, 4);
  EXPECT_NE(r.err.find("is empty"), std::string::npos) << r.err;
  std::ofstream(dir_ / "two-lines") << "abcdefghijklmnopq\r\nrstuvwxyz0123456789\n";
  r = api({"--token-file", (dir_ / "two-lines").string(), "switch", "news", "backup"});
  EXPECT_EQ(r.exit_code, 4);
  EXPECT_NE(r.err.find("one line of visible ASCII"), std::string::npos) << r.err;
  r = api({"switch", "news", "backup"});
  EXPECT_EQ(r.exit_code, 4);
  EXPECT_NE(r.err.find("switch needs the API token: pass --token-file FILE or set TWINCAST_TOKEN_FILE"),
            std::string::npos)
      << r.err;
  EXPECT_TRUE(backend_.switches_.empty());
  // Unknown channel: 5; unknown input (400) and a backend refusal (409): 1.
  r = api({"--token-file", tf, "switch", "nope", "main"});
  EXPECT_EQ(r.exit_code, 5);
  EXPECT_NE(r.err.find("no channel 'nope'"), std::string::npos) << r.err;
  r = api({"--token-file", tf, "switch", "news", "nope"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("channel 'news' has no input 'nope' (HTTP 400)"), std::string::npos) << r.err;
  EXPECT_TRUE(backend_.switches_.empty());
  backend_.refuse_switch_ = true;
  r = api({"--token-file", tf, "switch", "news", "backup"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("switch refused: input backup has no signal (HTTP 409)"), std::string::npos) << r.err;
  EXPECT_TRUE(r.out.empty());
  // An input name with JSON specials travels intact.
  backend_.refuse_switch_ = false;
  r = api({"--token-file", tf, "switch", "news", "we\"ird\\in"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("has no input 'we\"ird\\in'"), std::string::npos) << r.err;
}

TEST_F(CtlTest, Reload) {
  CtlRun r = api({"--token-file", token_file_.string(), "reload"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out,
            "configuration reloaded: 1 added, 1 removed, 1 restarted, 1 updated in place, 1 unchanged\n"
            "  added: kids\n  removed: old\n  restarted: sport\n  updated: weather\n");
  EXPECT_EQ(backend_.reloads_, 1);
  // Refused, with an error that quotes the token (the API redacts it, and so does the CLI).
  backend_.reload_error_ = std::string("line 3: bad value; token ") + kToken;
  r = api({"--token-file", token_file_.string(), "reload"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("reload refused, the running configuration stays: line 3: bad value; token *** (HTTP 409)"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(backend_.reloads_, 2);
  r = api({"reload"});
  EXPECT_EQ(r.exit_code, 4);
  r = api({"--token-file", wrong_token_file_.string(), "reload"});
  EXPECT_EQ(r.exit_code, 4);
  EXPECT_EQ(backend_.reloads_, 2);
}

// A 200 from something that is not twincastd (--api pointed at another web service, or a
// proxy's catch-all page) must not read as "done": switch and reload then changed nothing,
// and the exit code table says 3 for an answer that is not the API's JSON.
TEST_F(CtlTest, SwitchAndReloadAnsweredByAServerThatIsNotTheApiExit3) {
  tc::HttpServer other;
  for (const char* path : {"/api/v1/channels/{id}/switch", "/api/v1/reload"}) {
    other.route("POST", path, [](const tc::HttpRequest&) {
      return tc::HttpResponse{.status = 200, .content_type = "text/html", .body = "<html>It works!</html>"};
    });
  }
  other.listen("127.0.0.1:0");
  other.start();
  const std::string addr = "127.0.0.1:" + std::to_string(other.ports().at(0));
  CtlRun r = ctl({"--api", addr, "--token-file", token_file_.string(), "switch", "news", "backup"});
  EXPECT_EQ(r.exit_code, 3) << r.out << r.err;
  EXPECT_EQ(r.out.find("active input is now"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("is not the twincast API's JSON"), std::string::npos) << r.err;
  r = ctl({"--api", addr, "--token-file", token_file_.string(), "reload"});
  EXPECT_EQ(r.exit_code, 3) << r.out << r.err;
  EXPECT_EQ(r.out.find("configuration reloaded"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("is not the twincast API's JSON"), std::string::npos) << r.err;
  // --json prints the API's answer as is: this is not one either.
  r = ctl({"--api", addr, "--json", "--token-file", token_file_.string(), "reload"});
  EXPECT_EQ(r.exit_code, 3) << r.out << r.err;
  other.stop();
}

TEST_F(CtlTest, Multiplexes) {
  CtlRun r = api({"multiplexes"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out,
            "ID    CHANNELS    PACKETS_OUT  QUEUE_DROPS  OUTPUTS\n"
            "mux1  news,sport         1900            0  239.3.3.3:5000 (300 datagrams)\n");
  // Packets dropped at a full queue: a warning (the count is since the start, not now).
  {
    std::lock_guard lock(backend_.mutex_);
    backend_.multiplexes_[0].queue_drops = 12;
  }
  r = api({"multiplexes"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.err.find("1 of 1 multiplexes have dropped packets at a full output queue since they started (cbr_bps "
                       "below the members' total?): mux1 (12 packets)"),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.out.find("mux1  news,sport         1900           12"), std::string::npos) << r.out;
  r = api({"--json", "multiplexes"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("\"queue_drops\":12"), std::string::npos) << r.out;
  {
    std::lock_guard lock(backend_.mutex_);
    backend_.multiplexes_.clear();
  }
  r = api({"multiplexes"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.err.find("no multiplexes configured"), std::string::npos) << r.err;
  EXPECT_EQ(api({"multiplexes", "extra"}).exit_code, 2);
}

// Strings from the API reach the terminal defused (control characters as '?'): the member
// list of `multiplexes` too, not only the columns that went through str().
TEST_F(CtlTest, MultiplexMembersAreShownDefused) {
  {
    std::lock_guard lock(backend_.mutex_);
    backend_.multiplexes_[0].channels = {"news", "\x1b]0;owned\x07sport"};
  }
  CtlRun r = api({"multiplexes"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.find('\x1b'), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find('\x07'), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("news,?]0;owned?sport"), std::string::npos) << r.out;
}

// The API sends its counters as exact integers; `multiplexes` printed them through a double,
// so past 2^53 the last digits were made up (`channel` prints the same kind of count exactly).
// One channel whose name is not UTF-8 (a channel map saved in Latin-1: "Café" ends in byte
// E9) must not make `status` give up on every channel as "not the twincast API's JSON".
TEST_F(CtlTest, StatusShowsAChannelWhoseNameIsNotUtf8) {
  make_healthy();
  {
    std::lock_guard lock(backend_.mutex_);
    backend_.channels_[1].name = "Caf\xE9 TV";
  }
  CtlRun r = api({"status"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("Caf\xEF\xBF\xBD TV"), std::string::npos) << r.out;
}

TEST_F(CtlTest, MultiplexCountsArePrintedExactly) {
  {
    std::lock_guard lock(backend_.mutex_);
    backend_.multiplexes_[0].packets_out = 9'007'199'254'740'993ULL;  // 2^53 + 1
    backend_.multiplexes_[0].queue_drops = 9'007'199'254'740'995ULL;
    backend_.multiplexes_[0].outputs[0].datagrams = 18'014'398'509'481'985ULL;  // 2^54 + 1
  }
  CtlRun r = api({"multiplexes"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find(" 9007199254740993 "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(" 9007199254740995 "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("239.3.3.3:5000 (18014398509481985 datagrams)"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("mux1 (9007199254740995 packets)"), std::string::npos) << r.err;
}

TEST_F(CtlTest, TheTokenIsNeverTakenOnTheCommandLine) {
  for (const std::vector<std::string>& args : {std::vector<std::string>{"--token", kToken, "reload"},
                                               std::vector<std::string>{"--token=" + std::string(kToken), "reload"},
                                               std::vector<std::string>{"-t", kToken, "reload"}}) {
    CtlRun r = api(args);
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_NE(r.err.find("never taken on the command line"), std::string::npos) << r.err;
  }
  EXPECT_EQ(backend_.reloads_, 0);
  // TearDown checks that kToken appears in no output.
}

// ---------------------------------------------------------------------------------------
// Reaching the API

TEST_F(CtlTest, ApiAddressFromEnvironmentAndForms) {
  make_healthy();
  EXPECT_EQ(ctl({"status"}, "TWINCAST_API=" + address_).exit_code, 0);
  EXPECT_EQ(ctl({"--api", "http://" + address_ + "/", "status"}).exit_code, 0);
  EXPECT_EQ(ctl({"--api", "localhost:" + std::to_string(server_.ports().at(0)), "status"}).exit_code, 0);
  // --api beats the environment.
  EXPECT_EQ(ctl({"--api", address_, "status"}, "TWINCAST_API=127.0.0.1:1").exit_code, 0);
  for (const char* bad : {"nonsense", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:70000", ":80", "::1:80", "[::1:80",
                          "https://127.0.0.1:443"}) {
    CtlRun r = ctl({"--api", bad, "status"});
    EXPECT_EQ(r.exit_code, 2) << bad;
    EXPECT_NE(r.err.find("bad API address"), std::string::npos) << r.err;
  }
  CtlRun r = ctl({"status"}, "TWINCAST_API=oops");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("(from TWINCAST_API)"), std::string::npos) << r.err;
}

TEST_F(CtlTest, UnreachableApiExits3) {
  const ClosedPort closed_port;
  const std::string closed = "127.0.0.1:" + std::to_string(closed_port.port());
  for (const char* cmd : {"status", "reload"}) {
    // A refused connection is reported at once, not after the timeout: a long one (60 s), so
    // that the process's own start (seconds on a loaded machine, in the Sanitize build) stays
    // far below it.
    CtlRun r = ctl({"--api", closed, "--token-file", token_file_.string(), "--timeout", "60", cmd});
    EXPECT_EQ(r.exit_code, 3) << cmd << ": " << r.err;
    EXPECT_NE(r.err.find("cannot connect to the API at " + closed + ": Connection refused"), std::string::npos)
        << r.err;
    EXPECT_LT(r.seconds, 30.0);
    EXPECT_TRUE(r.out.empty());
  }
  // The default address is used when nothing is set (nothing listens on 8080 here, or
  // something that is not us: either way not a success).
  CtlRun r = ctl({"--timeout", "1", "status"});
  EXPECT_NE(r.exit_code, 0);
}

TEST_F(CtlTest, SilentApiTimesOut) {
  // Listening, never answering: the connection completes, no answer comes. The lower bounds
  // are on the whole run; the upper ones on how long twincastctl held the connection open
  // (the run adds the process's start, seconds on a loaded machine).
  boost::asio::io_context ioc;
  tcp::acceptor silent(ioc, tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0));
  const std::string addr = "127.0.0.1:" + std::to_string(silent.local_endpoint().port());
  auto held = std::async(std::launch::async, [&] { return seconds_held_until_closed(silent); });
  CtlRun r = ctl({"--api", addr, "--timeout", "0.5", "status"});
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.err.find("the API at " + addr + " did not answer within 0.5 s"), std::string::npos) << r.err;
  EXPECT_GE(r.seconds, 0.45);
  double held_s = held.get();
  EXPECT_GE(held_s, 0.0) << "no connection, or it was not closed";
  EXPECT_LT(held_s, 3.0);
  // The default timeout is 5 s.
  held = std::async(std::launch::async, [&] { return seconds_held_until_closed(silent); });
  r = ctl({"--api", addr, "status"});
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_GE(r.seconds, 4.9);
  held_s = held.get();
  EXPECT_GE(held_s, 0.0) << "no connection, or it was not closed";
  EXPECT_LT(held_s, 8.0);
}

TEST_F(CtlTest, AnswersThatAreNotTheApiNeverCrashIt) {
  // A server whose routes answer odd shapes, then random bytes.
  std::mutex m;
  std::string channels_body;
  std::string channel_body;
  unsigned status = 200;
  tc::HttpServer odd;
  odd.route("GET", "/api/v1/channels", [&](const tc::HttpRequest&) {
    std::lock_guard lock(m);
    return tc::HttpResponse{.status = status, .body = channels_body};
  });
  odd.route("GET", "/api/v1/channels/{id}", [&](const tc::HttpRequest&) {
    std::lock_guard lock(m);
    return tc::HttpResponse{.status = status, .body = channel_body};
  });
  odd.listen("127.0.0.1:0");
  odd.start();
  const std::string addr = "127.0.0.1:" + std::to_string(odd.ports().at(0));
  auto set = [&](std::string list, std::string one, unsigned st = 200) {
    std::lock_guard lock(m);
    channels_body = std::move(list);
    channel_body = std::move(one);
    status = st;
  };

  set("hello", "<html>");
  CtlRun r = ctl({"--api", addr, "status"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_NE(r.err.find("is not the twincast API's JSON"), std::string::npos) << r.err;
  EXPECT_EQ(ctl({"--api", addr, "channel", "x"}).exit_code, 3);
  set("{\"no\":1}", "[]");
  EXPECT_EQ(ctl({"--api", addr, "status"}).exit_code, 3);
  EXPECT_EQ(ctl({"--api", addr, "channel", "x"}).exit_code, 3);
  // Wrong types everywhere, and a terminal escape in a name: shown defused.
  set(R"({"channels":[1,"x",null,{"id":5,"name":"\u001b[31mred","state":"ok","bitrate_bps":"fast","alarms":[1]}]})",
      R"({"id":"x","state":"ok","inputs":[1,{"tr101290":[],"mdi":{"valid":true,"df_ms":"a"},"srt":{}}],)"
      R"("outputs":[{"pacing_lateness":{"buckets":[{"count":"x"},{"le_s":1}]}}],"hls":{"enabled":true},"alarms":[]})");
  r = ctl({"--api", addr, "status"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.out.find("?[31mred"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find('\x1b'), std::string::npos);
  r = ctl({"--api", addr, "channel", "x"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  // A 500 that is not JSON: refused (1), the text shown.
  set("oops", "oops", 500);
  r = ctl({"--api", addr, "channel", "x"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("oops (HTTP 500)"), std::string::npos) << r.err;

  // Random JSON-ish bodies: the process always exits normally.
  std::mt19937 rng(11);
  const std::string alphabet = "{}[]\":,0123456789.eE-+ truefalsnulidstateinputsalarmsbitrate_bpschannels\\u";
  const std::string seed_list = R"({"channels":[{"id":"a","name":"A","state":"ok","bitrate_bps":1e6,"alarms":["x"]}]})";
  // A real detail answer to mutate.
  CtlRun good = api({"--json", "channel", "news"});
  const std::string detail = good.out;
  ASSERT_FALSE(detail.empty());
  for (int i = 0; i < 24; ++i) {
    std::string a = seed_list;
    std::string b = detail;
    for (std::string* s : {&a, &b}) {
      const int edits = 1 + static_cast<int>(rng() % 8);
      for (int k = 0; k < edits && !s->empty(); ++k) {
        const std::size_t pos = rng() % s->size();
        switch (rng() % 3) {
          case 0: (*s)[pos] = alphabet[rng() % alphabet.size()]; break;
          case 1: s->erase(pos, 1 + rng() % 10); break;
          default: s->insert(pos, 1, alphabet[rng() % alphabet.size()]); break;
        }
      }
    }
    set(a, b);
    for (const char* cmd : {"status", "channel"}) {
      std::vector<std::string> args{"--api", addr, cmd};
      if (std::string(cmd) == "channel") args.push_back("x");
      r = ctl(args);
      EXPECT_TRUE(r.exit_code == 0 || r.exit_code == 1 || r.exit_code == 3) << cmd << " exit " << r.exit_code << "\n"
                                                                              << (cmd[0] == 's' ? a : b);
    }
  }
  odd.stop();
}

// ---------------------------------------------------------------------------------------
// check, usage, version

TEST_F(CtlTest, CheckValidatesLikeTwincastd) {
  const std::string demo = (source_dir() / "config/demo.yaml").string();
  const auto demo_result = tc::load_config(demo);
  ASSERT_TRUE(demo_result.ok()) << tc::format_errors(demo_result.errors, demo);
  CtlRun r = ctl({"check", demo});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, demo + ": OK (" + twincast::control::config_summary(*demo_result.config) + ")\n");
  EXPECT_TRUE(r.err.empty()) << r.err;

  const std::string bad = (source_dir() / "tests/config/invalid/multiple_errors.yaml").string();
  const auto bad_result = tc::load_config(bad);
  ASSERT_FALSE(bad_result.ok());
  ASSERT_GE(bad_result.errors.size(), 2U);
  r = ctl({"check", bad});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(r.out.empty()) << r.out;
  EXPECT_EQ(r.err, tc::format_errors(bad_result.errors, bad));
  EXPECT_EQ(r.err.rfind(bad + ":", 0), 0U) << r.err;
  const std::string bad_err = r.err;

  // Every invalid example fails with 1; a missing file too.
  for (const auto& e : fs::directory_iterator(source_dir() / "tests/config/invalid")) {
    if (e.path().extension() != ".yaml") continue;
    EXPECT_EQ(ctl({"check", e.path().string()}).exit_code, 1) << e.path();
  }
  r = ctl({"check", (dir_ / "nope.yaml").string()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("cannot read"), std::string::npos) << r.err;

  // Same output as twincastd --check when it is built.
  if (fs::exists(tt::tool("twincastd"))) {
    std::string cmd = tt::shell_quote(tt::tool("twincastd").string());
    cmd.append(" --check ").append(tt::shell_quote(bad));
    tt::RunResult d = tt::run(cmd);
    EXPECT_EQ(d.exit_code, 1);
    EXPECT_EQ(d.out, bad_err);
  }
}

TEST_F(CtlTest, UsageErrorsExit2) {
  const std::vector<std::vector<std::string>> cases = {
      {},
      {"frobnicate"},
      {"status", "extra"},
      {"channel"},
      {"channel", "a", "b"},
      {"switch", "news"},
      {"switch", "news", ""},
      {"reload", "now"},
      {"check"},
      {"--bogus", "status"},
      {"--api"},
      {"--api", address_},
      {"--timeout", "0", "status"},
      {"--timeout", "abc", "status"},
      {"--json=1", "status"},
      {"hls-url", "news", "--page=no"},
      {"--token-file", "", "reload"},
  };
  for (const auto& args : cases) {
    CtlRun r = ctl(args);
    std::string joined;
    for (const auto& a : args) joined += a + " ";
    EXPECT_EQ(r.exit_code, 2) << joined << "\n" << r.err;
    EXPECT_FALSE(r.err.empty()) << joined;
    EXPECT_TRUE(r.out.empty()) << joined << "\n" << r.out;
  }
  EXPECT_NE(ctl({"frobnicate"}).err.find("unknown command 'frobnicate'"), std::string::npos);
  EXPECT_NE(ctl({"channel"}).err.find("usage: twincastctl [OPTIONS] channel ID"), std::string::npos);
  // "--" ends the options.
  CtlRun r = api({"channel", "--", "--json"});
  EXPECT_EQ(r.exit_code, 5) << r.err;
}

TEST_F(CtlTest, HelpAndVersion) {
  CtlRun r = ctl({"--help"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_TRUE(r.err.empty());
  for (const char* s : {"status", "channel ID", "switch ID INPUT", "reload", "check FILE", "--api HOST:PORT",
                        "--token-file FILE", "--json", "--timeout", "TWINCAST_API", "TWINCAST_TOKEN_FILE", "exit codes:"}) {
    EXPECT_NE(r.out.find(s), std::string::npos) << s;
  }
  for (int i = 0; i <= 5; ++i) {
    const std::string line =
        "  " + std::to_string(i) + "  " + std::string(tc::ctl_exit_description(static_cast<tc::CtlExit>(i)));
    EXPECT_NE(r.out.find(line), std::string::npos) << line;
  }
  EXPECT_EQ(ctl({"help"}).out, r.out);
  EXPECT_EQ(ctl({"status", "-h"}).exit_code, 0);
  r = ctl({"--version"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out.rfind("twincastctl ", 0), 0U) << r.out;
  EXPECT_EQ(ctl({"-V"}).out, r.out);
  // No command: the help on stderr, exit 2.
  r = ctl({});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("usage: twincastctl"), std::string::npos);
}

// A refused reload carries the configuration's errors one per line (format_errors, as the
// appliance's reload answers them); the operator must see them as lines, not glued together
// by '?' (printable() turning each newline into a '?').
// Applied, but the SRT ingest did not start: the new configuration runs (not "refused"),
// the operator is told, and a script sees a failure.
TEST_F(CtlTest, AReloadAppliedWithAWarningSaysSoAndFails) {
  backend_.reload_warning_ = "the SRT ingest did not start: port 9000 is in use";
  CtlRun r = api({"--token-file", token_file_.string(), "reload"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.out.find("configuration reloaded: 1 added"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("reload: warning: the SRT ingest did not start: port 9000 is in use"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("refused"), std::string::npos) << r.err;
  r = api({"--token-file", token_file_.string(), "--json", "reload"});
  EXPECT_NE(r.out.find("\"status\":\"reloaded\""), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"warning\":\"the SRT ingest did not start: port 9000 is in use\""), std::string::npos) << r.out;
}

// --json changes what is printed, never the exit code (--help, control/README.md): a script
// that reloads with --json must see the warning's failure as well.
TEST_F(CtlTest, AReloadAppliedWithAWarningFailsWithJsonToo) {
  backend_.reload_warning_ = "the SRT ingest did not start: port 9000 is in use";
  CtlRun r = api({"--token-file", token_file_.string(), "--json", "reload"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(parse(r.out).at("warning").as_string(), "the SRT ingest did not start: port 9000 is in use");
  EXPECT_NE(r.err.find("reload: warning: the SRT ingest did not start"), std::string::npos) << r.err;
}

TEST_F(CtlTest, RefusedReloadShowsEachConfigErrorOnItsOwnLine) {
  backend_.reload_error_ = std::string(
      "/etc/twincast/channels.yaml:3:5: channels[0].id: \"News\" is not a valid id\n"
      "/etc/twincast/channels.yaml:9:7: channels[1].outputs[0].udp.group: 239.1.1.1:5000 is already the destination "
      "of channels[0].outputs[0]");
  CtlRun r = api({"--token-file", token_file_.string(), "reload"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err.find("valid id?/etc"), std::string::npos) << r.err;
  EXPECT_EQ(lines_with(r.err, "channels.yaml:3:5").size(), 1U) << r.err;
  EXPECT_EQ(lines_with(r.err, "channels.yaml:9:7").size(), 1U) << r.err;
  EXPECT_EQ(lines_with(r.err, "channels.yaml:").size(), 2U) << "both errors on one line: " << r.err;
}
