// The Grafana dashboard (config/grafana/twincast.json) against the real /metrics exposition:
// every metric, label and label value its queries use exists in what the Api renders (so
// renaming a metric breaks this test), every metric family is on a panel or listed below
// with the reason it is not, and promtool evaluates every panel query against series made
// from that exposition and finds data for each (and, from two appliances, keeps them apart).
// GCC 12 at -O1 with the sanitizers warns falsely inside <regex> (maybe-uninitialized in
// the std::function moves of its NFA states).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <boost/json.hpp>

#include "control/fake_backend.hpp"
#include "tests_common.hpp"
#include "twincast/control/api.hpp"
#include "twincast/control/hls_auth.hpp"
#include "twincast/control/metrics.hpp"
#include "twincast/mpegts/analyzer.hpp"

namespace tc = twincast::control;
namespace tt = twincast::test;
namespace json = boost::json;
namespace fs = std::filesystem;

namespace {

// Families deliberately left off the dashboard, with the reason.
const std::map<std::string, std::string> kNotOnDashboard = {
    {"twincast_input_info", "inventory (input kind), for joins in ad-hoc queries"},
    {"twincast_input_packets_total", "the bitrate panels use the bytes counter"},
    {"twincast_output_packets_total", "the output panels use datagrams and bytes"},
    {"twincast_channel_ott_feed_packets_total", "the HLS panel shows the feed's drops, not its volume"},
    {"twincast_input_over_bitrate_ceiling", "an alarm: counted in twincast_channel_alarms (alarms panel)"},
    {"twincast_channel_ott_shed", "an alarm: counted in twincast_channel_alarms (alarms panel)"},
};

// Labels Prometheus adds at scrape time.
const std::set<std::string> kTargetLabels = {"instance", "job"};

fs::path source_dir() {
  const char* s = std::getenv("TWINCAST_SOURCE_DIR");
  return s ? fs::path(s) : fs::path(".");
}

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// What the exposition holds: per sample name, the label names and the values of each; the
// family types (from # TYPE).
struct Exposition {
  std::string text;
  std::map<std::string, std::map<std::string, std::set<std::string>>> samples;  // name -> label -> values
  std::map<std::string, std::string> types;                                     // family -> type
  std::vector<std::pair<std::string, std::string>> series;  // (name{labels} as written, name)

  [[nodiscard]] std::string family_of(const std::string& sample) const {
    for (const char* suffix : {"_bucket", "_sum", "_count"}) {
      const std::string s(suffix);
      if (sample.size() > s.size() && sample.ends_with(s)) {
        const std::string base = sample.substr(0, sample.size() - s.size());
        if (types.count(base) != 0 && types.at(base) == "histogram") return base;
      }
    }
    return sample;
  }
};

// The fake backend with every optional series too: its news channel is also signed (HLS
// refusals by reason, which the fake leaves out), so no family is missed for want of data.
void add_optional_series(tt::FakeBackend& backend) {
  auto& hls = backend.channels_.at(0).hls;
  for (std::size_t d = 0; d < tc::kHlsDenialCount; ++d)
    hls.refused.emplace_back(tc::hls_denial_name(static_cast<tc::HlsDenial>(d)), 5 + d);
}

Exposition render_exposition(bool no_channels = false) {
  tt::FakeBackend backend;
  add_optional_series(backend);
  if (no_channels) backend.channels_.clear();
  tc::metrics::Registry registry;
  tc::Api api(backend, registry, tc::ApiOptions{});
  Exposition e;
  e.text = registry.render();
  std::istringstream in(e.text);
  std::string line;
  const std::regex label_re(R"re(([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)")re");
  while (std::getline(in, line)) {
    if (line.rfind("# TYPE ", 0) == 0) {
      std::istringstream t(line.substr(7));
      std::string name;
      std::string type;
      t >> name >> type;
      e.types[name] = type;
      continue;
    }
    if (line.empty() || line[0] == '#') continue;
    const std::size_t brace = line.find('{');
    const std::size_t space = line.rfind(' ');
    const std::string name = line.substr(0, std::min(brace, space));
    auto& labels = e.samples[name];
    if (brace != std::string::npos && brace < space) {
      const std::string body = line.substr(brace, space - brace);
      for (std::sregex_iterator it(body.begin(), body.end(), label_re), end; it != end; ++it) {
        labels[(*it)[1]].insert((*it)[2]);
      }
    }
    e.series.emplace_back(line.substr(0, space), name);
  }
  return e;
}

struct Query {
  std::string where;  // panel title and refId, for messages
  std::string expr;
  std::string legend;
};

void collect_panels(const json::array& panels, std::vector<Query>& out, std::vector<const json::object*>& all) {
  for (const auto& pv : panels) {
    const json::object& p = pv.as_object();
    all.push_back(&p);
    const std::string title = p.contains("title") ? std::string(p.at("title").as_string()) : "?";
    if (const auto* targets = p.if_contains("targets")) {
      for (const auto& tv : targets->as_array()) {
        const json::object& t = tv.as_object();
        const auto* legend = t.if_contains("legendFormat");
        out.push_back({title + " / " + std::string(t.at("refId").as_string()), std::string(t.at("expr").as_string()),
                       legend != nullptr ? std::string(legend->as_string()) : std::string()});
      }
    }
    if (const auto* nested = p.if_contains("panels")) collect_panels(nested->as_array(), out, all);
  }
}

struct Dashboard {
  json::object root;
  std::vector<Query> queries;
  std::vector<const json::object*> panels;
};

Dashboard load_dashboard() {
  Dashboard d;
  const std::string text = slurp(source_dir() / "config/grafana/twincast.json");
  EXPECT_FALSE(text.empty()) << "config/grafana/twincast.json not found under " << source_dir();
  d.root = json::parse(text).as_object();
  collect_panels(d.root.at("panels").as_array(), d.queries, d.panels);
  return d;
}

// Grafana's variables replaced by what PromQL accepts (for promtool); every appliance, or
// the one `instance`.
std::string substitute(std::string expr, const std::string& instance = ".*") {
  const std::vector<std::pair<std::string, std::string>> vars = {
      {"$__rate_interval", "5m"}, {"$__range", "1h"}, {"$__interval", "1m"},
      {"$instance", instance},    {"$channel", ".*"}, {"$multiplex", ".*"}, {"$port", ".*"}};
  for (const auto& [from, to] : vars) {
    for (std::size_t at = expr.find(from); at != std::string::npos; at = expr.find(from, at + to.size())) {
      expr.replace(at, from.size(), to);
    }
  }
  return expr;
}

std::vector<std::string> metric_names(const std::string& expr) {
  std::vector<std::string> out;
  const std::regex re(R"(\btwincast_[a-zA-Z0-9_:]*)");
  for (std::sregex_iterator it(expr.begin(), expr.end(), re), end; it != end; ++it) out.push_back(it->str());
  return out;
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s) {
    if (c == sep) {
      out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  out.push_back(cur);
  return out;
}

// Runs `promtool test rules` on one test group: the series over 90 minutes, each
// expression evaluated at 80 minutes must give what it expects.
void promtool_test(json::array input_series, json::array expr_tests) {
  json::object test_file{{"rule_files", json::array{}},
                         {"evaluation_interval", "1m"},
                         {"tests", json::array{json::object{{"interval", "1m"},
                                                            {"input_series", std::move(input_series)},
                                                            {"promql_expr_test", std::move(expr_tests)}}}}};
  const fs::path dir = tt::temp_dir("dashboard");
  const fs::path file = dir / "dashboard_test.yml";  // JSON is YAML
  std::ofstream(file) << json::serialize(test_file);
  const auto r = tt::run("promtool test rules " + tt::shell_quote(file.string()) + " 2>&1");
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("SUCCESS"), std::string::npos) << r.out;
  if (r.exit_code == 0) fs::remove_all(dir);
}

std::string trim(std::string s) {
  while (!s.empty() && s.front() == ' ') s.erase(s.begin());
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

}  // namespace

TEST(Dashboard, IsAGrafanaDashboardWithAPrometheusDatasourceVariable) {
  const Dashboard d = load_dashboard();
  EXPECT_FALSE(d.root.at("title").as_string().empty());
  EXPECT_FALSE(d.root.at("uid").as_string().empty());
  EXPECT_GE(d.root.at("schemaVersion").to_number<int>(), 36);  // Grafana 9.x / 10.x
  const auto& vars = d.root.at("templating").at("list").as_array();
  std::set<std::string> names;
  for (const auto& v : vars) names.insert(std::string(v.at("name").as_string()));
  ASSERT_EQ(names.count("datasource"), 1U);
  ASSERT_EQ(names.count("channel"), 1U);
  for (const auto& v : vars) {
    if (v.at("name") == "datasource") {
      EXPECT_EQ(v.at("type"), "datasource");
      EXPECT_EQ(v.at("query"), "prometheus");
    }
    if (v.at("name") == "channel") {
      EXPECT_EQ(v.at("type"), "query");
      EXPECT_NE(std::string(v.at("definition").as_string()).find("label_values("), std::string::npos);
    }
  }
  // Every panel and query reads from the chosen data source; ids are unique; the grid is 24 wide.
  std::set<std::int64_t> ids;
  for (const json::object* p : d.panels) {
    EXPECT_TRUE(ids.insert(p->at("id").to_number<std::int64_t>()).second) << "duplicate panel id " << p->at("id");
    const auto& g = p->at("gridPos");
    EXPECT_LE(g.at("x").to_number<int>() + g.at("w").to_number<int>(), 24) << p->at("title");
    if (p->at("type") == "row") continue;
    EXPECT_EQ(p->at("datasource").at("uid"), "${datasource}") << p->at("title");
    for (const auto& t : p->at("targets").as_array()) {
      EXPECT_EQ(t.at("datasource").at("uid"), "${datasource}") << p->at("title");
    }
  }
  EXPECT_GE(d.queries.size(), 20U);
}

TEST(Dashboard, EveryMetricLabelAndValueExistsInTheRealExposition) {
  const Exposition e = render_exposition();
  ASSERT_FALSE(e.samples.empty());
  const Dashboard d = load_dashboard();
  const std::regex selector_re(R"(\b(twincast_[a-zA-Z0-9_:]*)\s*\{([^}]*)\})");
  const std::regex matcher_re(R"re(([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)")re");
  const std::regex grouping_re(R"(\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\))");
  std::set<std::string> used;
  for (const Query& q : d.queries) {
    SCOPED_TRACE(q.where + ": " + q.expr);
    const auto names = metric_names(q.expr);
    EXPECT_FALSE(names.empty()) << "a query without a twincast metric";
    std::set<std::string> expr_labels(kTargetLabels);
    for (const std::string& n : names) {
      const auto it = e.samples.find(n);
      EXPECT_NE(it, e.samples.end()) << n << " is not in the /metrics exposition";
      if (it == e.samples.end()) continue;
      used.insert(e.family_of(n));
      for (const auto& [label, values] : it->second) expr_labels.insert(label);
    }
    // Selector labels exist on their metric; literal values (a|b|c) are values it has.
    for (std::sregex_iterator it(q.expr.begin(), q.expr.end(), selector_re), end; it != end; ++it) {
      const std::string metric = (*it)[1];
      const std::string body = (*it)[2];
      const auto sample = e.samples.find(metric);
      if (sample == e.samples.end()) continue;
      for (std::sregex_iterator m(body.begin(), body.end(), matcher_re), mend; m != mend; ++m) {
        const std::string label = (*m)[1];
        const std::string value = (*m)[3];
        if (kTargetLabels.count(label) != 0) continue;
        const auto lv = sample->second.find(label);
        EXPECT_NE(lv, sample->second.end()) << metric << " has no label " << label;
        // label="": the series without it (a channel's outputs have no multiplex label).
        if (lv == sample->second.end() || value.empty() || value.find('$') != std::string::npos) continue;
        if (value.find_first_of(".*+?[](){}^\\") != std::string::npos) continue;  // a real regex
        for (const std::string& alt : split(value, '|')) {
          EXPECT_EQ(lv->second.count(alt), 1U) << metric << "{" << label << "} never has the value " << alt;
        }
      }
    }
    // Grouping labels are carried by one of the query's metrics (le by the histogram's buckets).
    for (std::sregex_iterator it(q.expr.begin(), q.expr.end(), grouping_re), end; it != end; ++it) {
      for (const std::string& raw : split((*it)[1], ',')) {
        const std::string label = trim(raw);
        if (label.empty()) continue;
        EXPECT_EQ(expr_labels.count(label), 1U) << "grouping by " << label << ", which none of its metrics has";
      }
    }
  }
  // The template variables' label_values(metric{...}, label).
  const std::regex lv_re(R"(label_values\(\s*(twincast_[a-zA-Z0-9_:]*)[^,]*,\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\))");
  for (const auto& v : d.root.at("templating").at("list").as_array()) {
    if (v.at("type") != "query") continue;
    const std::string def(v.at("definition").as_string());
    std::smatch m;
    ASSERT_TRUE(std::regex_search(def, m, lv_re)) << def;
    const auto sample = e.samples.find(m[1]);
    ASSERT_NE(sample, e.samples.end()) << def;
    used.insert(m[1]);
    if (kTargetLabels.count(m[2]) == 0) {
      EXPECT_EQ(sample->second.count(m[2]), 1U) << def;
    }
  }
  // Every family is on the dashboard, or listed in kNotOnDashboard with its reason.
  for (const auto& [family, type] : e.types) {
    if (kNotOnDashboard.count(family) != 0) {
      EXPECT_EQ(used.count(family), 0U) << family << " is on the dashboard: take it out of kNotOnDashboard";
      continue;
    }
    EXPECT_EQ(used.count(family), 1U) << family << " (" << type
                                      << ") is on no panel: add one, or list it in kNotOnDashboard with the reason";
  }
  for (const auto& [family, why] : kNotOnDashboard) {
    EXPECT_EQ(e.types.count(family), 1U) << family << " in kNotOnDashboard is no longer exposed";
  }
}

// A signed channel's 403s (expired tokens, a CDN without them) are what the engineer looks
// for when viewers call: twincast_hls_refused_total must be on a panel, by reason.
TEST(Dashboard, SignedHlsRefusalsAreOnAPanelByReason) {
  const Exposition e = render_exposition();
  ASSERT_EQ(e.types.count("twincast_hls_refused_total"), 1U) << e.text;
  const Dashboard d = load_dashboard();
  bool shown = false;
  for (const Query& q : d.queries) {
    for (const std::string& n : metric_names(q.expr)) {
      if (n != "twincast_hls_refused_total") continue;
      shown = true;
      EXPECT_NE(q.legend.find("{{reason}}"), std::string::npos) << q.where << ": " << q.legend;
    }
  }
  EXPECT_TRUE(shown) << "twincast_hls_refused_total is on no panel";
}

// Output series carry either a channel or a multiplex label. Every output query takes one
// kind: a channel's outputs by the Channel variable, a multiplex's by the Multiplex variable
// (so choosing one channel does not hide the multiplexes), and a multiplex is named "mux ..."
// in the legend (a multiplex may have a channel's id). Each panel shows both kinds.
TEST(Dashboard, OutputPanelsShowChannelAndMultiplexOutputsApart) {
  const Dashboard d = load_dashboard();
  const std::string channel_sel = R"(channel=~"$channel", multiplex="")";
  const std::string multiplex_sel = R"(multiplex=~"$multiplex", channel="")";
  int panels = 0;
  for (const json::object* p : d.panels) {
    const auto* targets = p->if_contains("targets");
    if (targets == nullptr) continue;
    int channel_queries = 0;
    int multiplex_queries = 0;
    for (const auto& tv : targets->as_array()) {
      const std::string expr(tv.at("expr").as_string());
      const std::string legend(tv.at("legendFormat").as_string());
      if (expr.find("twincast_output_") == std::string::npos) continue;
      SCOPED_TRACE(std::string(p->at("title").as_string()) + ": " + expr);
      const bool by_channel = expr.find(channel_sel) != std::string::npos;
      const bool by_multiplex = expr.find(multiplex_sel) != std::string::npos;
      EXPECT_NE(by_channel, by_multiplex);
      if (by_channel) {
        ++channel_queries;
        EXPECT_EQ(legend.find("multiplex"), std::string::npos) << legend;
        EXPECT_EQ(legend.rfind("{{channel}}", 0), 0U) << legend;
      }
      if (by_multiplex) {
        ++multiplex_queries;
        EXPECT_EQ(expr.find("$channel"), std::string::npos);
        EXPECT_EQ(legend.rfind("mux {{multiplex}}", 0), 0U) << legend;
      }
    }
    if (channel_queries + multiplex_queries == 0) continue;
    ++panels;
    EXPECT_EQ(channel_queries, multiplex_queries) << p->at("title");
  }
  EXPECT_GE(panels, 3);
  bool variable = false;
  for (const auto& v : d.root.at("templating").at("list").as_array())
    variable = variable || (v.at("name") == "multiplex" && v.at("includeAll").as_bool());
  EXPECT_TRUE(variable) << "no Multiplex variable with an All option";
}

TEST(Dashboard, TheTwoTr101290PanelsCoverEveryCheckByPriority) {
  const Dashboard d = load_dashboard();
  std::map<int, std::set<std::string>> on_panels;
  const std::regex check_re(R"re(check=~"([^"$]*)")re");
  for (const Query& q : d.queries) {
    if (q.expr.find("twincast_input_tr101290_errors_total") == std::string::npos) continue;
    std::smatch m;
    if (!std::regex_search(q.expr, m, check_re)) continue;
    const auto checks = split(m[1], '|');
    const std::set<std::string> set(checks.begin(), checks.end());
    const int priority = q.where.find("priority 1") != std::string::npos ? 1 : q.where.find("priority 2") != std::string::npos ? 2 : 0;
    ASSERT_NE(priority, 0) << q.where;
    on_panels[priority].insert(set.begin(), set.end());
  }
  std::map<int, std::set<std::string>> expected;
  for (std::size_t k = 0; k < twincast::mpegts::kCheckCount; ++k) {
    const auto c = static_cast<twincast::mpegts::Check>(k);
    expected[twincast::mpegts::check_priority(c)].insert(std::string(twincast::mpegts::check_name(c)));
  }
  EXPECT_EQ(on_panels, expected);
}

// promtool evaluates each panel query (Grafana's variables substituted) against series made
// of every sample of the exposition — counters and histograms rising by 1 a minute, gauges
// at 1 — and each must return data: `count(QUERY) > bool 0` must be 1.
TEST(Dashboard, PromtoolFindsDataForEveryPanelQuery) {
  if (tt::run("command -v promtool").exit_code != 0) GTEST_SKIP() << "promtool not installed (scripts/setup installs prometheus)";
  const Exposition e = render_exposition();
  const Dashboard d = load_dashboard();
  json::array input_series;
  for (const auto& [series, name] : e.series) {
    const std::string family = e.family_of(name);
    const bool rising = e.types.count(family) != 0 && e.types.at(family) != "gauge";
    input_series.push_back(json::object{{"series", series}, {"values", rising ? "0+1x90" : "1x90"}});
  }
  json::array expr_tests;
  for (const Query& q : d.queries) {
    expr_tests.push_back(json::object{{"expr", "count(" + substitute(q.expr) + ") > bool 0"},
                                      {"eval_time", "80m"},
                                      {"exp_samples", json::array{json::object{{"labels", "{}"}, {"value", 1}}}}});
  }
  promtool_test(std::move(input_series), std::move(expr_tests));
}

// Two appliances (a redundant pair with the same lineup, the dashboard's Appliance variable
// at its default, All): a query that shows something per channel, input, output, multiplex,
// port or worker shows it per appliance too, never their sum or maximum under one name (a
// pair each sending news at 8 Mbit/s is not news at 16 Mbit/s; one on its backup input does
// not make the other's backup active). With both appliances it returns twice the series it
// returns for one.
TEST(Dashboard, TwoAppliancesAreNotAddedUp) {
  if (tt::run("command -v promtool").exit_code != 0) GTEST_SKIP() << "promtool not installed";
  const Exposition e = render_exposition();
  const Dashboard d = load_dashboard();
  const std::vector<std::string> instances = {"a.example.net:9100", "b.example.net:9100"};
  json::array input_series;
  for (const std::string& instance : instances) {
    for (const auto& [series, name] : e.series) {
      const std::string family = e.family_of(name);
      const bool rising = e.types.count(family) != 0 && e.types.at(family) != "gauge";
      std::string s = series;
      const std::string label = "instance=\"" + instance + "\"";
      const std::size_t brace = s.find('{');
      s = brace == std::string::npos ? s + "{" + label + "}" : s.insert(brace + 1, label + ",");
      input_series.push_back(json::object{{"series", s}, {"values", rising ? "0+1x90" : "1x90"}});
    }
  }
  const std::regex per_object(
      R"(\{\{(channel|multiplex|input|output|port|lcore)\}\}|\bby \([^)]*\b(channel|multiplex|input|port|lcore)\b)");
  json::array expr_tests;
  std::vector<std::string> checked;
  for (const Query& q : d.queries) {
    if (!std::regex_search(q.legend, per_object) && !std::regex_search(q.expr, per_object)) continue;
    checked.push_back(q.where);
    expr_tests.push_back(json::object{
        {"expr", "count(" + substitute(q.expr) + ") == bool 2 * count(" + substitute(q.expr, instances[0]) + ")"},
        {"eval_time", "80m"},
        {"exp_samples", json::array{json::object{{"labels", "{}"}, {"value", 1}}}}});
  }
  EXPECT_GE(checked.size(), 20U);
  promtool_test(std::move(input_series), std::move(expr_tests));
}

// An appliance whose channel map is empty (being set up, or a spare) is still in the
// Appliance variable, so its port, worker and SRT panels can be chosen.
TEST(Dashboard, TheApplianceVariableListsAnApplianceWithoutChannels) {
  const Exposition e = render_exposition(true);
  ASSERT_EQ(e.samples.count("twincast_channel_state"), 0U) << "the fake's channels were not cleared";
  const Dashboard d = load_dashboard();
  bool found = false;
  for (const auto& v : d.root.at("templating").at("list").as_array()) {
    if (v.at("name") != "instance") continue;
    found = true;
    const std::string def(v.at("definition").as_string());
    std::smatch m;
    ASSERT_TRUE(std::regex_search(def, m, std::regex(R"(label_values\(\s*(twincast_[a-zA-Z0-9_:]*))"))) << def;
    EXPECT_EQ(e.samples.count(m[1]), 1U) << def << " lists no appliance without channels";
  }
  EXPECT_TRUE(found);
}

// The harness itself: a query for a metric that does not exist fails promtool's test.
TEST(Dashboard, PromtoolRejectsAQueryWithoutData) {
  if (tt::run("command -v promtool").exit_code != 0) GTEST_SKIP() << "promtool not installed";
  const fs::path dir = tt::temp_dir("dashboard");
  const fs::path file = dir / "t.yml";
  std::ofstream(file) << R"({"rule_files":[],"evaluation_interval":"1m","tests":[{"interval":"1m",
    "input_series":[{"series":"twincast_channel_alarms{channel=\"news\"}","values":"1x10"}],
    "promql_expr_test":[{"expr":"count(twincast_channel_alarm{channel=~\".*\"}) > bool 0","eval_time":"5m",
    "exp_samples":[{"labels":"{}","value":1}]}]}]})";
  const auto r = tt::run("promtool test rules " + tt::shell_quote(file.string()) + " 2>&1");
  EXPECT_NE(r.exit_code, 0) << r.out;
  fs::remove_all(dir);
}
