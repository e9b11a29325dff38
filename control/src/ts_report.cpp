#include "twincast/control/ts_report.hpp"

#include <boost/json.hpp>
#include <cstdio>
#include <string>
#include <vector>

#include "twincast/control/http_server.hpp"  // valid_utf8: JSON text is UTF-8 (RFC 8259 8.1), names from a stream need not be

namespace twincast::control {

namespace json = boost::json;
using mpegts::Check;

namespace {

double duration_s(const mpegts::Report& r) {
  return r.now_ns > r.start_ns ? static_cast<double>(r.now_ns - r.start_ns) / 1e9 : 0.0;
}

// The bitrate of a PID as a user expects it from a file: the average over the stream.
double pid_bitrate(const mpegts::Report& r, std::uint16_t pid) {
  const mpegts::PidReport* p = r.find_pid(pid);
  return p ? p->average_bitrate_bps : 0.0;
}

std::string hex_pid(std::uint16_t pid) {
  char b[8];
  std::snprintf(b, sizeof b, "0x%04x", pid);
  return b;
}

std::string rate_text(double bps) {
  char b[32];
  if (bps >= 1e6) std::snprintf(b, sizeof b, "%.2f Mbit/s", bps / 1e6);
  else std::snprintf(b, sizeof b, "%.1f kbit/s", bps / 1e3);
  return b;
}

const mpegts::StreamParams* params_of(const StreamAnalysis& a, std::uint16_t pid) {
  auto it = a.params.find(pid);
  return it == a.params.end() ? nullptr : &it->second;
}

std::string service_codecs(const StreamAnalysis& a, const mpegts::Service& s) {
  std::vector<mpegts::StreamParams> ps;
  for (const auto& es : s.streams)
    if (const auto* p = params_of(a, es.pid)) ps.push_back(*p);
  return mpegts::hls_codecs(ps);
}

json::object mdi_json(const mpegts::Mdi& m) {
  json::object o;
  o["valid"] = m.valid;
  o["df_ms"] = m.df_ms;
  o["mlr"] = m.mlr;
  o["media_rate_bps"] = m.media_rate_bps;
  return o;
}

}  // namespace

json::value to_json(const StreamAnalysis& a) {
  const mpegts::Report& r = a.report;
  json::object root;
  root["file"] = valid_utf8(a.source);
  root["packets"] = r.packets;
  root["bytes"] = a.bytes;
  root["packet_size"] = a.packet_size;
  root["skipped_bytes"] = a.skipped_bytes;
  root["duration_s"] = duration_s(r);
  root["bitrate_bps"] = static_cast<std::int64_t>(r.average_bitrate_bps + 0.5);
  json::object timing;
  timing["pcr_pid"] = a.clock_pid;
  timing["constant_rate"] = a.constant_rate;
  timing["rate_bps"] = static_cast<std::int64_t>(a.clock_rate_bps + 0.5);
  timing["pcr_accuracy_measurable"] = a.constant_rate;
  root["timing"] = std::move(timing);

  json::array services;
  for (const auto& s : r.programs.services) {
    json::object so;
    so["service_id"] = s.service_id;
    so["name"] = valid_utf8(s.name);
    so["provider"] = valid_utf8(s.provider);
    so["pmt_pid"] = s.pmt_pid;
    so["pcr_pid"] = s.pcr_pid;
    so["lcn"] = s.lcn;
    so["has_pmt"] = s.has_pmt;
    so["hls_codecs"] = service_codecs(a, s);
    json::array streams;
    for (const auto& es : s.streams) {
      json::object eo;
      eo["pid"] = es.pid;
      eo["stream_type"] = es.stream_type;
      eo["codec"] = mpegts::codec_name(es.codec);
      eo["language"] = valid_utf8(es.language);
      eo["bitrate_bps"] = static_cast<std::int64_t>(pid_bitrate(r, es.pid) + 0.5);
      if (const auto* p = params_of(a, es.pid)) {
        eo["hls_codec"] = p->hls_codec();
        if (p->width != 0) {
          eo["width"] = p->width;
          eo["height"] = p->height;
        }
        if (p->frame_rate_den != 0)
          eo["frame_rate"] = static_cast<double>(p->frame_rate_num) / static_cast<double>(p->frame_rate_den);
        if (p->sample_rate != 0) {
          eo["sample_rate"] = p->sample_rate;
          eo["channels"] = p->channels;
        }
      }
      streams.push_back(std::move(eo));
    }
    so["streams"] = std::move(streams);
    services.push_back(std::move(so));
  }
  root["services"] = std::move(services);

  json::array pids;
  for (const auto& p : r.pids) {
    json::object po;
    po["pid"] = p.pid;
    po["packets"] = p.packets;
    po["bitrate_bps"] = static_cast<std::int64_t>(p.average_bitrate_bps + 0.5);
    po["cc_errors"] = p.errors[static_cast<std::size_t>(Check::kContinuityCountError)];
    pids.push_back(std::move(po));
  }
  root["pids"] = std::move(pids);

  json::object tr;
  for (std::size_t i = 0; i < mpegts::kCheckCount; ++i)
    tr[mpegts::check_name(static_cast<Check>(i))] = r.checks[i].count;
  root["tr101290"] = std::move(tr);
  json::object mdi;
  mdi["last"] = mdi_json(r.mdi_last);
  mdi["max"] = mdi_json(r.mdi_max);
  mdi["df_ms"] = r.mdi_last.df_ms;
  mdi["mlr"] = r.mdi_last.mlr;
  root["mdi"] = std::move(mdi);
  return root;
}

std::string to_text(const StreamAnalysis& a) {
  const mpegts::Report& r = a.report;
  std::string out;
  char line[512];
  std::snprintf(line, sizeof line, "%s: %llu packets of %zu bytes, %.2f s, %s",
                a.source.c_str(), static_cast<unsigned long long>(r.packets), a.packet_size, duration_s(r),
                rate_text(r.average_bitrate_bps).c_str());
  out += line;
  if (a.skipped_bytes != 0) out += ", " + std::to_string(a.skipped_bytes) + " bytes skipped (not in any packet)";
  out += "\n";
  if (a.clock_pid == 0x1FFF) {
    out += "timing: no PCR found; all packets taken as arriving at once\n";
  } else {
    std::snprintf(line, sizeof line, "timing: PCR of PID %s, %s rate %s%s\n", hex_pid(a.clock_pid).c_str(),
                  a.constant_rate ? "constant" : "variable", rate_text(a.clock_rate_bps).c_str(),
                  a.constant_rate ? "" : " (PCR accuracy is judged only where the rate is constant)");
    out += line;
  }
  if (r.programs.services.empty()) out += "no services: no PAT/PMT found\n";
  for (const auto& s : r.programs.services) {
    std::snprintf(line, sizeof line, "service %u \"%s\" (%s)  PMT %s  PCR %s", s.service_id, s.name.c_str(),
                  s.provider.c_str(), hex_pid(s.pmt_pid).c_str(), hex_pid(s.pcr_pid).c_str());
    out += line;
    if (s.lcn != 0) out += "  LCN " + std::to_string(s.lcn);
    const std::string codecs = service_codecs(a, s);
    if (!codecs.empty()) out += "  CODECS \"" + codecs + "\"";
    if (!s.has_pmt) out += "  (no PMT received)";
    out += "\n";
    for (const auto& es : s.streams) {
      std::string detail;
      if (const auto* p = params_of(a, es.pid)) {
        if (p->width != 0) detail += std::to_string(p->width) + "x" + std::to_string(p->height);
        if (p->frame_rate_den != 0) {
          std::snprintf(line, sizeof line, " %.5g fps", static_cast<double>(p->frame_rate_num) / static_cast<double>(p->frame_rate_den));
          detail += line;
        }
        if (p->sample_rate != 0) detail += std::to_string(p->sample_rate) + " Hz " + std::to_string(p->channels) + " ch";
      }
      std::snprintf(line, sizeof line, "  %s  %-12s type 0x%02x  %-3s  %-22s %s\n", hex_pid(es.pid).c_str(),
                    std::string(mpegts::codec_name(es.codec)).c_str(), es.stream_type, es.language.c_str(), detail.c_str(),
                    rate_text(pid_bitrate(r, es.pid)).c_str());
      out += line;
    }
  }
  out += "PIDs:\n";
  for (const auto& p : r.pids) {
    std::snprintf(line, sizeof line, "  %s  %10llu packets  %14s  CC errors %llu\n", hex_pid(p.pid).c_str(),
                  static_cast<unsigned long long>(p.packets), rate_text(p.average_bitrate_bps).c_str(),
                  static_cast<unsigned long long>(p.errors[static_cast<std::size_t>(Check::kContinuityCountError)]));
    out += line;
  }
  for (int prio = 1; prio <= 2; ++prio) {
    out += "TR 101 290 priority " + std::to_string(prio) + ":";
    for (std::size_t i = 0; i < mpegts::kCheckCount; ++i) {
      const auto c = static_cast<Check>(i);
      if (mpegts::check_priority(c) != prio) continue;
      out += "\n  " + std::string(mpegts::check_name(c)) + " " + std::to_string(r.checks[i].count);
    }
    out += "\n";
  }
  std::snprintf(line, sizeof line, "MDI: DF %.2f ms, MLR %.2f pkt/s (last interval); max DF %.2f ms, max MLR %.2f pkt/s\n",
                r.mdi_last.df_ms, r.mdi_last.mlr, r.mdi_max.df_ms, r.mdi_max.mlr);
  out += line;
  return out;
}

}  // namespace twincast::control
