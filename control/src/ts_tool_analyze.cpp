// `twincast-ts analyze`: the analyzer and the access-unit scanners over a file.
#include <boost/json/serialize.hpp>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ts_tool_internal.hpp"
#include "twincast/control/ts_file.hpp"
#include "twincast/control/ts_report.hpp"
#include "twincast/mpegts/access_unit.hpp"
#include "twincast/mpegts/analyzer.hpp"
#include "twincast/mpegts/file_times.hpp"

namespace twincast::control {

namespace {

constexpr const char* kAnalyzeUsage =
    "usage: twincast-ts analyze [--json] FILE.ts   ('-' reads standard input)\n"
    "Prints services, PIDs, codecs, bitrates, ETSI TR 101 290 priority 1 and 2 counts and\n"
    "MDI (RFC 4445). Packet times come from the PCRs of the first PCR PID. PCR accuracy is\n"
    "measured from byte positions where the PCR intervals keep a constant rate (within 1 %);\n"
    "a variable-rate stream has no such stretch and its PCR accuracy is not judged.\n";

// Codec parameters for every elementary stream the PMTs announce.
class ParamsCollector {
 public:
  void push(const mpegts::TsPacket& p, const mpegts::ProgramModel& model) {
    // Look again after every PAT or PMT packet (a few % of the packets): the scanner must be
    // there for the first access unit after the PMT, which often carries the only SPS.
    if (p.pid() == mpegts::kPatPid || pmt_pid_[p.pid()]) refresh(model);
    const auto slot = slot_[p.pid()];
    if (slot != kNone) scanners_[slot].second.push(p);
  }
  void collect(StreamAnalysis& a) const {
    for (const auto& [pid, s] : scanners_)
      if (s.params_known()) a.params[pid] = s.params();
  }

 private:
  static constexpr std::uint16_t kNone = 0xFFFF;
  void refresh(const mpegts::ProgramModel& model) {
    for (const auto& s : model.services) {
      if (s.pmt_pid < mpegts::kPidCount) pmt_pid_[s.pmt_pid] = true;
      for (const auto& es : s.streams) {
        if (es.pid >= mpegts::kNullPid || slot_[es.pid] != kNone) continue;
        const auto k = mpegts::codec_kind(es.codec);
        if (k != mpegts::StreamKind::kVideo && k != mpegts::StreamKind::kAudio) continue;
        slot_[es.pid] = static_cast<std::uint16_t>(scanners_.size());
        scanners_.emplace_back(es.pid, mpegts::AccessUnitScanner(es.codec));
      }
    }
  }
  std::vector<bool> pmt_pid_ = std::vector<bool>(mpegts::kPidCount, false);
  std::vector<std::uint16_t> slot_ = std::vector<std::uint16_t>(mpegts::kPidCount, kNone);
  std::vector<std::pair<std::uint16_t, mpegts::AccessUnitScanner>> scanners_;
};

}  // namespace

int analyze_command(const std::vector<std::string>& args) {
  bool as_json = false;
  std::string path;
  for (const auto& a : args) {
    if (a == "--json") as_json = true;
    else if (a == "-h" || a == "--help") {
      std::fputs(kAnalyzeUsage, stdout);
      return 0;
    } else if (!a.empty() && a[0] == '-' && a != "-") throw UsageError("unknown option " + a + "\n" + kAnalyzeUsage);
    else if (path.empty()) path = a;
    else throw UsageError(std::string("one file at a time\n") + kAnalyzeUsage);
  }
  if (path.empty()) throw UsageError(std::string("no file\n") + kAnalyzeUsage);

  // A file has no arrival times: the stream's own PCRs stand in for them (file_times.hpp).
  TsFileStats st;
  const std::vector<mpegts::TsPacket> packets = load_ts_file(path, &st);
  const mpegts::FileTimes times = mpegts::file_times(packets);
  // file_times() starts at the first PCR and puts the packets before it at 0 too: a capture
  // that starts just after a PCR would lose up to a PCR interval of its duration and report
  // every bitrate that much too high. Those packets go back where the clock's rate puts them.
  std::size_t first_pcr = 0;
  while (first_pcr < packets.size() && !(packets[first_pcr].has_sync() && packets[first_pcr].has_pcr() &&
                                         packets[first_pcr].pid() == times.pcr_pid))
    ++first_pcr;
  const double ns_per_packet = times.rate_bps > 0 ? static_cast<double>(mpegts::kPacketSize * 8) * 1e9 / times.rate_bps : 0;
  const auto lead_ns = static_cast<std::uint64_t>(static_cast<double>(first_pcr) * ns_per_packet);
  const auto time_of = [&](std::size_t i) {
    return i < first_pcr ? static_cast<std::uint64_t>(static_cast<double>(i) * ns_per_packet) : times.ns[i] + lead_ns;
  };
  auto analyzer = std::make_unique<mpegts::Analyzer>();
  ParamsCollector params;
  // Each sync loss goes in where it happened: the analyzer counts one per loss of sync, not
  // while sync is still being regained, so replaying them all at the end would count one.
  std::size_t loss = 0;
  for (std::size_t i = 0; i < packets.size(); ++i) {
    for (; loss < st.sync_loss_at.size() && st.sync_loss_at[loss] <= i; ++loss) analyzer->on_aligner_sync_loss();
    analyzer->push(packets[i], time_of(i));
    params.push(packets[i], analyzer->programs());
  }
  for (; loss < st.sync_loss_at.size(); ++loss) analyzer->on_aligner_sync_loss();

  StreamAnalysis a;
  a.source = path;
  a.bytes = st.bytes;
  a.skipped_bytes = st.aligner.skipped_bytes;
  a.packet_size = st.unit_size;
  a.report = analyzer->report();
  a.constant_rate = times.constant_rate;
  a.clock_rate_bps = times.rate_bps;
  a.clock_pid = times.pcr_pid;
  params.collect(a);
  if (as_json) std::printf("%s\n", boost::json::serialize(to_json(a)).c_str());
  else std::fputs(to_text(a).c_str(), stdout);
  return 0;
}

}  // namespace twincast::control
