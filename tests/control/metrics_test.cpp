// The metrics registry and its text exposition: names, escaping, histograms, ordering,
// collectors, and promtool's verdict on the rendered text.
#include "twincast/control/metrics.hpp"

#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <stdexcept>
#include <thread>

#include "tests_common.hpp"

namespace m = twincast::control::metrics;
namespace tt = twincast::test;

namespace {

// Runs `promtool check metrics` on `text`; returns its exit code and output.
tt::RunResult promtool_check(const std::string& text) {
  auto dir = tt::temp_dir("promtool");
  auto file = dir / "metrics.txt";
  {
    std::ofstream f(file, std::ios::binary);
    f << text;
  }
  auto r = tt::run("promtool check metrics < " + tt::shell_quote(file.string()));
  std::filesystem::remove_all(dir);
  return r;
}

bool have_promtool() { return tt::run("command -v promtool").exit_code == 0; }

}  // namespace

TEST(Metrics, NameValidation) {
  EXPECT_TRUE(m::valid_metric_name("twincast_input_packets_total"));
  EXPECT_TRUE(m::valid_metric_name("a:b_c9"));
  EXPECT_TRUE(m::valid_metric_name(":colon_first"));
  EXPECT_TRUE(m::valid_metric_name("_x"));
  EXPECT_FALSE(m::valid_metric_name(""));
  EXPECT_FALSE(m::valid_metric_name("9lives"));
  EXPECT_FALSE(m::valid_metric_name("has-dash"));
  EXPECT_FALSE(m::valid_metric_name("has space"));
  EXPECT_FALSE(m::valid_metric_name("é"));

  EXPECT_TRUE(m::valid_label_name("channel"));
  EXPECT_TRUE(m::valid_label_name("_x1"));
  EXPECT_FALSE(m::valid_label_name("__reserved"));
  EXPECT_FALSE(m::valid_label_name("a:b"));
  EXPECT_FALSE(m::valid_label_name("1a"));
  EXPECT_FALSE(m::valid_label_name(""));

  m::Registry r;
  EXPECT_THROW(m::BuildCounter().Name("bad-name").Help("x").Register(r), std::invalid_argument);
  auto& f = m::BuildCounter().Name("ok_total").Help("x").Register(r);
  EXPECT_THROW(f.Add({{"bad-label", "v"}}), std::invalid_argument);
  EXPECT_THROW(f.Add({{"__name__", "v"}}), std::invalid_argument);
  auto& h = m::BuildHistogram().Name("h_seconds").Help("x").Register(r);
  EXPECT_THROW(h.Add({{"le", "1"}}, m::BucketBoundaries{1.0}), std::invalid_argument);
  // The same name with another type is refused; with the same type it is the same family.
  EXPECT_THROW(m::BuildGauge().Name("ok_total").Help("x").Register(r), std::invalid_argument);
  EXPECT_EQ(&m::BuildCounter().Name("ok_total").Help("x").Register(r), &f);
}

TEST(Metrics, ValueFormatting) {
  auto fmt = [](double v) {
    std::string s;
    m::append_value(s, v);
    return s;
  };
  EXPECT_EQ(fmt(0), "0");
  EXPECT_EQ(fmt(42), "42");
  EXPECT_EQ(fmt(-3), "-3");
  EXPECT_EQ(fmt(1e15), "1000000000000000");
  EXPECT_EQ(fmt(0.25), "0.25");
  EXPECT_EQ(fmt(1e-5), "1e-05");
  EXPECT_EQ(fmt(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(fmt(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(fmt(std::nan("")), "NaN");
  // Round trip for an awkward value.
  EXPECT_EQ(std::stod(fmt(0.1 + 0.2)), 0.1 + 0.2);
}

TEST(Metrics, CounterGaugeAndExposition) {
  m::Registry r;
  auto& c = m::BuildCounter().Name("t_events_total").Help("Events seen").Register(r);
  auto& g = m::BuildGauge().Name("t_level").Help("A level").Register(r);
  auto& c1 = c.Add({{"channel", "news"}});
  c1.Increment();
  c1.Increment(2.5);
  c1.Increment(-7);  // ignored: counters only go up
  EXPECT_DOUBLE_EQ(c1.Value(), 3.5);
  // The same label set is the same metric.
  EXPECT_EQ(&c.Add({{"channel", "news"}}), &c1);
  auto& gg = g.Add({});
  gg.Set(10);
  gg.Increment(2);
  gg.Decrement(5);
  EXPECT_DOUBLE_EQ(gg.Value(), 7);

  const std::string text = r.render();
  const std::string expected =
      "# HELP t_events_total Events seen\n"
      "# TYPE t_events_total counter\n"
      "t_events_total{channel=\"news\"} 3.5\n"
      "# HELP t_level A level\n"
      "# TYPE t_level gauge\n"
      "t_level 7\n";
  EXPECT_EQ(text, expected);
}

TEST(Metrics, LabelEscapingAndHelpEscaping) {
  m::Registry r;
  auto& f = m::BuildGauge().Name("t_info").Help("back\\slash and\nnewline").Register(r);
  f.Add({{"name", "a\"quoted\" back\\slash\nnewline"}, {"b", "plain"}}).Set(1);
  const std::string text = r.serialize();
  EXPECT_NE(text.find("# HELP t_info back\\\\slash and\\nnewline\n"), std::string::npos) << text;
  // Labels in name order: b before name.
  EXPECT_NE(text.find("t_info{b=\"plain\",name=\"a\\\"quoted\\\" back\\\\slash\\nnewline\"} 1\n"), std::string::npos)
      << text;
  // Exactly the lines we expect (no raw newline leaked into a sample line).
  std::size_t lines = 0;
  for (char ch : text) lines += ch == '\n' ? 1U : 0U;
  EXPECT_EQ(lines, 3U);
  if (have_promtool()) {
    auto res = promtool_check(text);
    EXPECT_EQ(res.exit_code, 0) << res.out << "\n" << text;
  }
}

TEST(Metrics, HistogramBucketsAreCumulativeWithInf) {
  m::Registry r;
  auto& f = m::BuildHistogram().Name("t_lateness_seconds").Help("Lateness").Register(r);
  auto& h = f.Add({{"output", "239.1.1.1:5000"}}, m::BucketBoundaries{0.001, 0.01, 0.1});
  for (double v : {0.0005, 0.001, 0.002, 0.05, 0.5, 2.0}) h.Observe(v);
  h.Observe(std::nan(""));  // ignored
  EXPECT_EQ(h.count(), 6U);
  EXPECT_EQ(h.bucket_counts(), (std::vector<std::uint64_t>{2, 1, 1, 2}));
  const std::string text = r.serialize();
  const std::string expected =
      "# HELP t_lateness_seconds Lateness\n"
      "# TYPE t_lateness_seconds histogram\n"
      "t_lateness_seconds_bucket{output=\"239.1.1.1:5000\",le=\"0.001\"} 2\n"
      "t_lateness_seconds_bucket{output=\"239.1.1.1:5000\",le=\"0.01\"} 3\n"
      "t_lateness_seconds_bucket{output=\"239.1.1.1:5000\",le=\"0.1\"} 4\n"
      "t_lateness_seconds_bucket{output=\"239.1.1.1:5000\",le=\"+Inf\"} 6\n"
      "t_lateness_seconds_sum{output=\"239.1.1.1:5000\"} 2.5535\n"
      "t_lateness_seconds_count{output=\"239.1.1.1:5000\"} 6\n";
  EXPECT_EQ(text, expected);

  // Mirroring and multi-observation.
  std::array<std::uint64_t, 4> counts{1, 0, 0, 3};
  h.Set(counts, 9.0);
  EXPECT_EQ(h.count(), 4U);
  h.ObserveMultiple(counts, 1.0);
  EXPECT_EQ(h.bucket_counts(), (std::vector<std::uint64_t>{2, 0, 0, 6}));
  EXPECT_DOUBLE_EQ(h.sum(), 10.0);
  std::array<std::uint64_t, 2> wrong{1, 2};
  EXPECT_THROW(h.Set(wrong, 0), std::invalid_argument);

  EXPECT_THROW(m::Histogram(m::BucketBoundaries{1.0, 1.0}), std::invalid_argument);
  EXPECT_THROW(m::Histogram(m::BucketBoundaries{2.0, 1.0}), std::invalid_argument);
  EXPECT_THROW(m::Histogram(m::BucketBoundaries{std::numeric_limits<double>::infinity()}), std::invalid_argument);
  // No bounds: only +Inf.
  m::Histogram only_inf(m::BucketBoundaries{});
  only_inf.Observe(3);
  EXPECT_EQ(only_inf.count(), 1U);
}

TEST(Metrics, FamiliesAndSeriesSortedEmptyFamiliesSilent) {
  m::Registry r;
  auto& zz = m::BuildGauge().Name("zz_last").Help("z").Register(r);
  auto& aa = m::BuildGauge().Name("aa_first").Help("a").Register(r);
  m::BuildGauge().Name("mm_empty").Help("no metrics yet").Register(r);
  zz.Add({{"k", "b"}}).Set(2);
  zz.Add({{"k", "a"}}).Set(1);
  aa.Add({}).Set(0);
  const std::string text = r.serialize();
  auto pos_aa = text.find("aa_first 0");
  auto pos_a = text.find("zz_last{k=\"a\"} 1");
  auto pos_b = text.find("zz_last{k=\"b\"} 2");
  ASSERT_NE(pos_aa, std::string::npos);
  ASSERT_NE(pos_a, std::string::npos);
  ASSERT_NE(pos_b, std::string::npos);
  EXPECT_LT(pos_aa, pos_a);
  EXPECT_LT(pos_a, pos_b);
  EXPECT_EQ(text.find("mm_empty"), std::string::npos);

  // Remove and Clear.
  auto& b = zz.Add({{"k", "b"}});
  zz.Remove(&b);
  EXPECT_FALSE(zz.Has({{"k", "b"}}));
  EXPECT_TRUE(zz.Has({{"k", "a"}}));
  zz.Clear();
  EXPECT_EQ(zz.size(), 0U);
  EXPECT_EQ(r.serialize().find("zz_last"), std::string::npos);
}

TEST(Metrics, ConstantLabelsMerge) {
  m::Registry r;
  auto& f = m::BuildCounter().Name("t_total").Help("x").Labels({{"node", "a"}}).Register(r);
  f.Add({{"channel", "c"}}).Increment();
  EXPECT_NE(r.serialize().find("t_total{channel=\"c\",node=\"a\"} 1\n"), std::string::npos) << r.serialize();
}

TEST(Metrics, CollectorsRunBeforeEachRenderAndCanBeRemoved) {
  m::Registry r;
  auto& g = m::BuildGauge().Name("t_source").Help("copied from a source").Register(r);
  std::atomic<std::uint64_t> source{5};  // the data plane's own one-writer counter
  int runs = 0;
  auto id = r.add_collector([&] {
    ++runs;
    g.Add({}).Set(static_cast<double>(source.load()));
  });
  EXPECT_NE(r.render().find("t_source 5\n"), std::string::npos);
  source = 9;
  EXPECT_NE(r.render().find("t_source 9\n"), std::string::npos);
  EXPECT_EQ(runs, 2);
  r.remove_collector(id);
  source = 11;
  EXPECT_NE(r.render().find("t_source 9\n"), std::string::npos);
  EXPECT_EQ(runs, 2);
}

TEST(Metrics, ConcurrentWriterAndRenderer) {
  // One writer per counter, a renderer reading: values only grow, the text stays well formed.
  m::Registry r;
  auto& f = m::BuildCounter().Name("t_packets_total").Help("x").Register(r);
  auto& c = f.Add({{"input", "a"}});
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    while (!stop.load()) c.Increment();
  });
  double last = -1;
  for (int i = 0; i < 200; ++i) {
    std::string text = r.render();
    auto pos = text.find("t_packets_total{input=\"a\"} ");
    ASSERT_NE(pos, std::string::npos);
    double v = std::stod(text.substr(pos + 27));
    EXPECT_GE(v, last);
    last = v;
  }
  stop = true;
  writer.join();
}

TEST(Metrics, RandomLabelValuesPassPromtool) {
  if (!have_promtool()) GTEST_SKIP() << "promtool not installed (scripts/setup installs prometheus)";
  m::Registry r;
  auto& f = m::BuildGauge().Name("t_random_values").Help("Random label values").Register(r);
  auto& h = m::BuildHistogram().Name("t_random_seconds").Help("Random observations").Register(r);
  std::mt19937 rng(1234);
  for (int i = 0; i < 50; ++i) {
    std::string v;
    std::size_t len = rng() % 20;
    for (std::size_t k = 0; k < len; ++k) {
      // Printable ASCII plus the characters that need escaping.
      const std::string alphabet = "abcXYZ019 _-:/.{}=,\"\\\n\t#";
      v += alphabet[rng() % alphabet.size()];
    }
    f.Add({{"v", v}, {"i", std::to_string(i)}}).Set(static_cast<double>(rng() % 1000) / 7.0);
    h.Add({{"i", std::to_string(i)}}, m::BucketBoundaries{0.001, 0.1, 10}).Observe(static_cast<double>(rng() % 100) / 9.0);
  }
  auto res = promtool_check(r.serialize());
  EXPECT_EQ(res.exit_code, 0) << res.out;
}

TEST(Metrics, PromtoolRejectsWhatWeMustNotProduce) {
  // Guards the promtool harness itself: a counter without _total fails the lint.
  if (!have_promtool()) GTEST_SKIP() << "promtool not installed";
  m::Registry r;
  m::BuildCounter().Name("t_no_suffix").Help("x").Register(r).Add({}).Increment();
  EXPECT_NE(promtool_check(r.serialize()).exit_code, 0);
}
