// `twincast-ts remux`: the remux engine on files.
#include <charconv>
#include <cstdio>
#include <fstream>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "ts_tool_internal.hpp"
#include "twincast/control/ts_file.hpp"
#include "twincast/mpegts/file_times.hpp"
#include "twincast/mpegts/psi_decoder.hpp"
#include "twincast/mpegts/remux.hpp"

namespace twincast::control {

namespace {

constexpr const char* kRemuxUsage =
    "usage: twincast-ts remux -o OUT.ts [options] INPUT.ts [INPUT.ts...]\n"
    "  One input:   keep every service, or only --service ID (MPTS -> SPTS).\n"
    "  Several:     merge them into one MPTS (each input's first service, or --service ID per input\n"
    "               as a comma list); colliding PIDs are remapped.\n"
    "options:\n"
    "  --service ID[,ID...]     source service(s) to keep (one per input when merging)\n"
    "  --service-id ID[,ID...]  output service ids, in output order (default: the source's)\n"
    "  --lcn N[,N...]           logical channel numbers (adds them to a NIT)\n"
    "  --name S[,S...]          output service names (SDT)\n"
    "  --map [IN:]FROM=TO       carry source PID FROM of input IN (default 0) on output PID TO\n"
    "  --drop [IN:]PID          drop source PID of input IN\n"
    "  --tsid N                 output transport_stream_id (default 1)\n"
    "  --onid N                 original_network_id (default 1)\n"
    "  --nit                    generate a NIT (implied by --lcn)\n"
    "  --network-name S         network name for the NIT (default twincast)\n"
    "PIDs and ids are decimal or 0x-hex.\n";

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  std::size_t start = 0;
  for (;;) {
    const std::size_t c = s.find(',', start);
    out.push_back(s.substr(start, c == std::string::npos ? std::string::npos : c - start));
    if (c == std::string::npos) return out;
    start = c + 1;
  }
}

// "[IN:]X" or "[IN:]X=Y": the input index and the rest.
std::pair<std::size_t, std::string> input_prefixed(const std::string& s, const char* what) {
  const std::size_t colon = s.find(':');
  if (colon == std::string::npos) return {0, s};
  return {parse_number(s.substr(0, colon), what, 0, 1000), s.substr(colon + 1)};
}

}  // namespace

int remux_command(const std::vector<std::string>& args) {
  std::string out_path;
  std::vector<std::string> inputs;
  std::vector<std::string> services, service_ids, lcns, names;
  struct Rule {
    std::size_t input;
    mpegts::PidRule rule;
  };
  std::vector<Rule> rules;
  mpegts::RemuxConfig cfg;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&]() -> const std::string& {
      if (i + 1 >= args.size()) throw UsageError(a + " needs a value");
      return args[++i];
    };
    if (a == "-o" || a == "--output") out_path = value();
    else if (a == "--service") services = split_commas(value());
    else if (a == "--service-id") service_ids = split_commas(value());
    else if (a == "--lcn") lcns = split_commas(value());
    else if (a == "--name") names = split_commas(value());
    else if (a == "--tsid") cfg.transport_stream_id = static_cast<std::uint16_t>(parse_number(value(), "--tsid", 0, 0xFFFF));
    else if (a == "--onid") cfg.original_network_id = static_cast<std::uint16_t>(parse_number(value(), "--onid", 0, 0xFFFF));
    else if (a == "--nit") cfg.nit = true;
    else if (a == "--network-name") cfg.network_name = value();
    else if (a == "--map") {
      const auto [in, rest] = input_prefixed(value(), "--map input");
      const std::size_t eq = rest.find('=');
      if (eq == std::string::npos) throw UsageError("--map takes [IN:]FROM=TO, got " + rest);
      mpegts::PidRule r;
      r.from = static_cast<std::uint16_t>(parse_number(rest.substr(0, eq), "--map FROM", 0, 0x1FFE));
      r.to = static_cast<std::uint16_t>(parse_number(rest.substr(eq + 1), "--map TO", 0x20, 0x1FFE));
      rules.push_back({in, r});
    } else if (a == "--drop") {
      const auto [in, rest] = input_prefixed(value(), "--drop input");
      mpegts::PidRule r;
      r.from = static_cast<std::uint16_t>(parse_number(rest, "--drop PID", 0, 0x1FFE));
      r.drop = true;
      rules.push_back({in, r});
    } else if (a == "-h" || a == "--help") {
      std::fputs(kRemuxUsage, stdout);
      return 0;
    } else if (!a.empty() && a[0] == '-' && a != "-") {
      throw UsageError("unknown option " + a + "\n" + kRemuxUsage);
    } else {
      inputs.push_back(a);
    }
  }
  if (out_path.empty()) throw UsageError(std::string("-o OUT.ts is required\n") + kRemuxUsage);
  if (inputs.empty()) throw UsageError(std::string("no input file\n") + kRemuxUsage);
  for (const auto& r : rules)
    if (r.input >= inputs.size()) throw UsageError("a PID rule names input " + std::to_string(r.input) + ", but there are " + std::to_string(inputs.size()) + " inputs");

  // Load the inputs and learn their services.
  std::vector<std::vector<mpegts::TsPacket>> data;
  std::vector<mpegts::ProgramModel> models;
  for (const auto& path : inputs) {
    data.push_back(load_ts_file(path));
    mpegts::PsiDecoder psi;
    for (const auto& p : data.back()) psi.push(p);
    if (psi.model().services.empty()) throw InputError(path + ": no PAT/PMT found: is it an MPEG transport stream?");
    models.push_back(psi.model());
  }

  // One output service per (input, source service).
  cfg.n_inputs = inputs.size();
  auto wanted_service = [&](std::size_t k) -> std::uint16_t {
    return static_cast<std::uint16_t>(parse_number(services[k], "--service", 1, 0xFFFF));
  };
  if (inputs.size() == 1) {
    if (services.empty()) {
      for (const auto& s : models[0].services) cfg.services.push_back({.input = 0, .source_service_id = s.service_id});
    } else {
      for (std::size_t k = 0; k < services.size(); ++k) cfg.services.push_back({.input = 0, .source_service_id = wanted_service(k)});
    }
  } else {
    if (!services.empty() && services.size() != inputs.size())
      throw UsageError("--service lists " + std::to_string(services.size()) + " ids for " + std::to_string(inputs.size()) + " inputs");
    for (std::size_t i = 0; i < inputs.size(); ++i)
      cfg.services.push_back({.input = i, .source_service_id = services.empty() ? models[i].services.front().service_id : wanted_service(i)});
  }
  for (auto& sc : cfg.services) {
    if (models[sc.input].find_service(sc.source_service_id) == nullptr)
      throw InputError(inputs[sc.input] + ": no service " + std::to_string(sc.source_service_id) + " in its PAT");
    for (const auto& r : rules)
      if (r.input == sc.input) sc.rules.push_back(r.rule);
  }
  auto apply_list = [&](const std::vector<std::string>& list, const char* what, auto&& set) {
    if (list.empty()) return;
    if (list.size() != cfg.services.size())
      throw UsageError(std::string(what) + " lists " + std::to_string(list.size()) + " values for " +
                       std::to_string(cfg.services.size()) + " output services");
    for (std::size_t k = 0; k < list.size(); ++k) set(cfg.services[k], list[k]);
  };
  apply_list(service_ids, "--service-id", [](auto& sc, const std::string& v) {
    sc.service_id = static_cast<std::uint16_t>(parse_number(v, "--service-id", 1, 0xFFFF));
  });
  apply_list(lcns, "--lcn", [](auto& sc, const std::string& v) {
    sc.lcn = static_cast<std::uint16_t>(parse_number(v, "--lcn", 1, 1023));
  });
  apply_list(names, "--name", [](auto& sc, const std::string& v) { sc.name = v; });
  if (!lcns.empty()) cfg.nit = true;

  mpegts::Remuxer remux(cfg);  // throws std::invalid_argument with the reason

  // Interleave the inputs by their own PCR clocks, as they would arrive live.
  std::vector<mpegts::FileTimes> times;
  for (const auto& d : data) times.push_back(mpegts::file_times(d));
  std::vector<std::size_t> next(inputs.size(), 0);
  std::vector<mpegts::TsPacket> out(remux.max_output_per_push());
  std::ofstream f(out_path, std::ios::binary | std::ios::trunc);
  if (!f) throw InputError(out_path + ": cannot open for writing");
  std::uint64_t written = 0;
  for (;;) {
    std::size_t pick = inputs.size();
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      if (next[i] >= data[i].size()) continue;
      if (pick == inputs.size() || times[i].ns[next[i]] < times[pick].ns[next[pick]]) pick = i;
    }
    if (pick == inputs.size()) break;
    const std::size_t k = next[pick]++;
    const std::size_t n = remux.push(pick, data[pick][k], times[pick].ns[k], out);
    f.write(reinterpret_cast<const char*>(out.data()), static_cast<std::streamsize>(n * mpegts::kPacketSize));
    written += n;
  }
  f.close();
  if (!f) throw InputError(out_path + ": write failed");
  const auto& st = remux.stats();
  std::fprintf(stderr, "remux: %llu packets in, %llu out (%llu PSI), %zu services, %llu PIDs remapped -> %s\n",
               static_cast<unsigned long long>(st.packets_in), static_cast<unsigned long long>(written),
               static_cast<unsigned long long>(st.psi_packets_out), remux.output_model().services.size(),
               static_cast<unsigned long long>(st.remapped_pids), out_path.c_str());
  return 0;
}

}  // namespace twincast::control
