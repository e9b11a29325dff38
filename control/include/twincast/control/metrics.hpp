// A small metrics registry with prometheus-cpp's concepts (Registry, Family<T>, Counter,
// Gauge, Histogram, labels, Build*().Name().Help().Register()) and the Prometheus text
// exposition format 0.0.4. prometheus-cpp is not packaged for Debian 12; the names below
// follow its API (PascalCase methods, against STYLE.md on purpose) so that it can be
// swapped in later by changing includes and the serializer call.
//
// Threads: a metric's value is an atomic with one writer (whoever owns the counter);
// rendering only reads. Adding, removing and rendering take a mutex per family, so they
// stay off any per-packet path: the data plane keeps its own one-writer counters, and a
// collector (add_collector) copies them into metrics here just before each render, on the
// rendering thread.
//
// Extensions over prometheus-cpp, for collectors that mirror counters owned elsewhere:
// Counter::Set and Histogram::Set (prometheus-cpp would use a custom Collectable).
#pragma once

#include <atomic>
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

namespace twincast::control::metrics {

// Label name -> value. Ordered, so a label set has one spelling and families render
// their metrics in a stable order.
using Labels = std::map<std::string, std::string>;

#define TWINCAST_METRIC_TYPES(X) \
  X(kCounter, "counter")         \
  X(kGauge, "gauge")             \
  X(kHistogram, "histogram")

enum class MetricType : std::uint8_t {
#define TWINCAST_X(e, s) e,
  TWINCAST_METRIC_TYPES(TWINCAST_X)
#undef TWINCAST_X
};

[[nodiscard]] constexpr std::string_view metric_type_name(MetricType t) {
  switch (t) {
#define TWINCAST_X(e, s) \
  case MetricType::e:    \
    return s;
    TWINCAST_METRIC_TYPES(TWINCAST_X)
#undef TWINCAST_X
  }
  return "untyped";
}

// [a-zA-Z_:][a-zA-Z0-9_:]*
[[nodiscard]] bool valid_metric_name(std::string_view name);
// [a-zA-Z_][a-zA-Z0-9_]*, not starting with "__" (reserved for Prometheus).
[[nodiscard]] bool valid_label_name(std::string_view name);
// Exposition escaping of a label value: \ -> \\, " -> \", newline -> \n.
void append_escaped_label_value(std::string& out, std::string_view value);
// A sample value as the exposition format spells it: shortest round-trip decimal,
// integers without exponent, +Inf, -Inf, NaN.
void append_value(std::string& out, double value);

// Monotonic counter.
class Counter {
 public:
  static constexpr MetricType kType = MetricType::kCounter;
  Counter() = default;
  // `v` must be >= 0 (negative increments are ignored: a counter never goes down).
  void Increment(double v = 1.0);
  [[nodiscard]] double Value() const { return value_.load(std::memory_order_relaxed); }
  // Extension: mirror a counter owned elsewhere (its only writer is a collector).
  void Set(double v) { value_.store(v, std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

class Gauge {
 public:
  static constexpr MetricType kType = MetricType::kGauge;
  Gauge() = default;
  void Set(double v) { value_.store(v, std::memory_order_relaxed); }
  void Increment(double v = 1.0);
  void Decrement(double v = 1.0);
  [[nodiscard]] double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

// Upper bounds of the buckets, strictly increasing and finite (+Inf is implicit).
using BucketBoundaries = std::vector<double>;

class Histogram {
 public:
  static constexpr MetricType kType = MetricType::kHistogram;
  // Throws std::invalid_argument when the boundaries are not strictly increasing finite values.
  explicit Histogram(BucketBoundaries buckets);

  // Counts `value` in the first bucket whose upper bound is >= value (or +Inf).
  void Observe(double value);
  // prometheus-cpp's ObserveMultiple: adds per-bucket increments (size buckets + 1, the
  // last is +Inf) and their sum.
  void ObserveMultiple(std::span<const std::uint64_t> bucket_increments, double sum_of_values);
  // Extension: mirror a histogram owned elsewhere. `bucket_counts` are per bucket (not
  // cumulative), size buckets + 1.
  void Set(std::span<const std::uint64_t> bucket_counts, double sum_of_values);

  [[nodiscard]] const BucketBoundaries& boundaries() const { return bounds_; }
  // Per-bucket counts (not cumulative), size buckets + 1.
  [[nodiscard]] std::vector<std::uint64_t> bucket_counts() const;
  [[nodiscard]] std::uint64_t count() const;
  [[nodiscard]] double sum() const { return sum_.load(std::memory_order_relaxed); }

 private:
  BucketBoundaries bounds_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> counts_;  // bounds_.size() + 1
  std::atomic<double> sum_{0.0};
};

// What a registry holds: a named, typed set of metrics distinguished by their labels.
class FamilyBase {
 public:
  FamilyBase(std::string name, std::string help, Labels constant_labels);
  virtual ~FamilyBase() = default;
  FamilyBase(const FamilyBase&) = delete;
  FamilyBase& operator=(const FamilyBase&) = delete;

  [[nodiscard]] const std::string& name() const { return name_; }
  [[nodiscard]] const std::string& help() const { return help_; }
  [[nodiscard]] const Labels& constant_labels() const { return constant_labels_; }
  [[nodiscard]] virtual MetricType type() const = 0;
  [[nodiscard]] virtual std::size_t size() const = 0;
  // Appends HELP, TYPE and every sample. A family without metrics writes nothing.
  virtual void serialize(std::string& out) const = 0;

 protected:
  // Merges the constant labels into `labels` and validates every name; throws
  // std::invalid_argument.
  [[nodiscard]] Labels full_labels(const Labels& labels) const;

  std::string name_;
  std::string help_;
  Labels constant_labels_;
};

template <typename T>
class Family final : public FamilyBase {
 public:
  using FamilyBase::FamilyBase;

  // The metric with these labels, created on first use. The same label set always yields
  // the same metric (no duplicate series); the reference stays valid until Remove/Clear.
  // Throws std::invalid_argument for a bad label name.
  template <typename... Args>
  T& Add(const Labels& labels, Args&&... args) {
    Labels full = full_labels(labels);
    std::lock_guard lock(mutex_);
    auto it = metrics_.find(full);
    if (it != metrics_.end()) return *it->second;
    auto metric = std::make_unique<T>(std::forward<Args>(args)...);
    T& ref = *metric;
    metrics_.emplace(std::move(full), std::move(metric));
    return ref;
  }
  // Removes one metric; `metric` dangles afterwards.
  void Remove(T* metric);
  // Removes every metric (references dangle).
  void Clear();
  [[nodiscard]] bool Has(const Labels& labels) const;

  [[nodiscard]] MetricType type() const override { return T::kType; }
  [[nodiscard]] std::size_t size() const override;
  void serialize(std::string& out) const override;

 private:
  mutable std::mutex mutex_;
  std::map<Labels, std::unique_ptr<T>> metrics_;
};

class Registry {
 public:
  Registry() = default;
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // The family named `name`: created, or the existing one when it has the same type.
  // Throws std::invalid_argument for a bad name or a name already used by another type.
  template <typename T>
  Family<T>& add_family(const std::string& name, const std::string& help, const Labels& constant_labels = {});

  // A callback run before each render (on the rendering thread, one render at a time),
  // to copy values owned elsewhere into this registry's metrics. Returns an id.
  std::size_t add_collector(std::function<void()> collector);
  void remove_collector(std::size_t id);

  // Runs the collectors, then writes every family sorted by name in the text format 0.0.4.
  // Cost (Release, api_test MetricsCost: 500 channels, 42k samples, 3.5 MB): ~10 ms to
  // serialize (~0.25 us/sample) plus the collectors' work (the Api's: ~35 ms).
  [[nodiscard]] std::string render();
  // Only the serialization, without running the collectors.
  [[nodiscard]] std::string serialize() const;

 private:
  mutable std::mutex mutex_;          // families_ and collectors_
  std::mutex render_mutex_;           // one render (collectors + serialization) at a time
  std::map<std::string, std::unique_ptr<FamilyBase>> families_;  // sorted by name
  std::map<std::size_t, std::function<void()>> collectors_;
  std::size_t next_collector_ = 1;
};

extern template class Family<Counter>;
extern template class Family<Gauge>;
extern template class Family<Histogram>;
extern template Family<Counter>& Registry::add_family<Counter>(const std::string&, const std::string&, const Labels&);
extern template Family<Gauge>& Registry::add_family<Gauge>(const std::string&, const std::string&, const Labels&);
extern template Family<Histogram>& Registry::add_family<Histogram>(const std::string&, const std::string&,
                                                                   const Labels&);

// prometheus::BuildCounter().Name("x_total").Help("...").Labels({...}).Register(registry).
template <typename T>
class Builder {
 public:
  Builder& Name(std::string name) {
    name_ = std::move(name);
    return *this;
  }
  Builder& Help(std::string help) {
    help_ = std::move(help);
    return *this;
  }
  Builder& Labels(metrics::Labels labels) {
    labels_ = std::move(labels);
    return *this;
  }
  Family<T>& Register(Registry& registry) const { return registry.add_family<T>(name_, help_, labels_); }

 private:
  std::string name_;
  std::string help_;
  metrics::Labels labels_;
};

inline Builder<Counter> BuildCounter() { return {}; }
inline Builder<Gauge> BuildGauge() { return {}; }
inline Builder<Histogram> BuildHistogram() { return {}; }

}  // namespace twincast::control::metrics
