#include "twincast/control/metrics.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <stdexcept>

namespace twincast::control::metrics {

namespace {

bool name_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool name_char(char c) { return name_start(c) || (c >= '0' && c <= '9'); }

void append_help(std::string& out, std::string_view help) {
  for (char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
}

// `{a="x",b="y"}` with an optional extra label (le) last; nothing for an empty set.
void append_labels(std::string& out, const Labels& labels, std::string_view extra_name = {},
                   std::string_view extra_value = {}) {
  if (labels.empty() && extra_name.empty()) return;
  out += '{';
  bool first = true;
  for (const auto& [k, v] : labels) {
    if (!first) out += ',';
    first = false;
    out += k;
    out += "=\"";
    append_escaped_label_value(out, v);
    out += '"';
  }
  if (!extra_name.empty()) {
    if (!first) out += ',';
    out += extra_name;
    out += "=\"";
    out += extra_value;
    out += '"';
  }
  out += '}';
}

void append_sample(std::string& out, std::string_view name, std::string_view suffix, const Labels& labels,
                   double value, std::string_view extra_name = {}, std::string_view extra_value = {}) {
  out += name;
  out += suffix;
  append_labels(out, labels, extra_name, extra_value);
  out += ' ';
  append_value(out, value);
  out += '\n';
}

void add_relaxed(std::atomic<double>& a, double v) {
  // One writer per metric (see the header); fetch_add keeps concurrent writers correct too.
  a.fetch_add(v, std::memory_order_relaxed);
}

}  // namespace

bool valid_metric_name(std::string_view name) {
  if (name.empty()) return false;
  if (!name_start(name[0]) && name[0] != ':') return false;
  return std::all_of(name.begin() + 1, name.end(), [](char c) { return name_char(c) || c == ':'; });
}

bool valid_label_name(std::string_view name) {
  if (name.empty() || !name_start(name[0])) return false;
  if (name.starts_with("__")) return false;
  return std::all_of(name.begin() + 1, name.end(), name_char);
}

void append_escaped_label_value(std::string& out, std::string_view value) {
  for (char c : value) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '"':
        out += "\\\"";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        out += c;
    }
  }
}

void append_value(std::string& out, double value) {
  if (std::isnan(value)) {
    out += "NaN";
    return;
  }
  if (std::isinf(value)) {
    out += value > 0 ? "+Inf" : "-Inf";
    return;
  }
  char buf[64];
  // Integers up to 2^53 print exactly without exponent; others in the shortest form
  // that reads back to the same double.
  if (value == std::trunc(value) && std::fabs(value) < 9007199254740992.0) {
    auto r = std::to_chars(buf, buf + sizeof buf, static_cast<long long>(value));
    out.append(buf, r.ptr);
    return;
  }
  auto r = std::to_chars(buf, buf + sizeof buf, value);
  out.append(buf, r.ptr);
}

// ---------------------------------------------------------------------------------------
// Metrics

void Counter::Increment(double v) {
  if (!(v >= 0)) return;
  add_relaxed(value_, v);
}

void Gauge::Increment(double v) { add_relaxed(value_, v); }
void Gauge::Decrement(double v) { add_relaxed(value_, -v); }

Histogram::Histogram(BucketBoundaries buckets) : bounds_(std::move(buckets)) {
  for (std::size_t i = 0; i < bounds_.size(); ++i) {
    if (!std::isfinite(bounds_[i])) throw std::invalid_argument("histogram bucket bounds must be finite");
    if (i > 0 && !(bounds_[i] > bounds_[i - 1])) {
      throw std::invalid_argument("histogram bucket bounds must be strictly increasing");
    }
  }
  counts_ = std::make_unique<std::atomic<std::uint64_t>[]>(bounds_.size() + 1);
  for (std::size_t i = 0; i <= bounds_.size(); ++i) counts_[i].store(0, std::memory_order_relaxed);
}

void Histogram::Observe(double value) {
  if (std::isnan(value)) return;
  auto it = std::lower_bound(bounds_.begin(), bounds_.end(), value);  // first bound >= value
  auto index = static_cast<std::size_t>(it - bounds_.begin());
  counts_[index].fetch_add(1, std::memory_order_relaxed);
  add_relaxed(sum_, value);
}

void Histogram::ObserveMultiple(std::span<const std::uint64_t> bucket_increments, double sum_of_values) {
  if (bucket_increments.size() != bounds_.size() + 1) {
    throw std::invalid_argument("histogram: bucket increments must have one entry per bucket plus +Inf");
  }
  for (std::size_t i = 0; i < bucket_increments.size(); ++i) {
    counts_[i].fetch_add(bucket_increments[i], std::memory_order_relaxed);
  }
  add_relaxed(sum_, sum_of_values);
}

void Histogram::Set(std::span<const std::uint64_t> bucket_counts, double sum_of_values) {
  if (bucket_counts.size() != bounds_.size() + 1) {
    throw std::invalid_argument("histogram: bucket counts must have one entry per bucket plus +Inf");
  }
  for (std::size_t i = 0; i < bucket_counts.size(); ++i) counts_[i].store(bucket_counts[i], std::memory_order_relaxed);
  sum_.store(sum_of_values, std::memory_order_relaxed);
}

std::vector<std::uint64_t> Histogram::bucket_counts() const {
  std::vector<std::uint64_t> v(bounds_.size() + 1);
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = counts_[i].load(std::memory_order_relaxed);
  return v;
}

std::uint64_t Histogram::count() const {
  std::uint64_t n = 0;
  for (std::size_t i = 0; i <= bounds_.size(); ++i) n += counts_[i].load(std::memory_order_relaxed);
  return n;
}

// ---------------------------------------------------------------------------------------
// Families

FamilyBase::FamilyBase(std::string name, std::string help, Labels constant_labels)
    : name_(std::move(name)), help_(std::move(help)), constant_labels_(std::move(constant_labels)) {
  if (!valid_metric_name(name_)) throw std::invalid_argument("invalid metric name '" + name_ + "'");
  for (const auto& [k, v] : constant_labels_) {
    if (!valid_label_name(k)) throw std::invalid_argument("metric " + name_ + ": invalid label name '" + k + "'");
  }
}

Labels FamilyBase::full_labels(const Labels& labels) const {
  Labels full = constant_labels_;
  for (const auto& [k, v] : labels) {
    if (!valid_label_name(k)) throw std::invalid_argument("metric " + name_ + ": invalid label name '" + k + "'");
    if (type() == MetricType::kHistogram && k == "le") {
      throw std::invalid_argument("metric " + name_ + ": a histogram may not use the label 'le'");
    }
    full[k] = v;
  }
  return full;
}

template <typename T>
void Family<T>::Remove(T* metric) {
  std::lock_guard lock(mutex_);
  for (auto it = metrics_.begin(); it != metrics_.end(); ++it) {
    if (it->second.get() == metric) {
      metrics_.erase(it);
      return;
    }
  }
}

template <typename T>
void Family<T>::Clear() {
  std::lock_guard lock(mutex_);
  metrics_.clear();
}

template <typename T>
bool Family<T>::Has(const Labels& labels) const {
  Labels full = full_labels(labels);
  std::lock_guard lock(mutex_);
  return metrics_.count(full) != 0;
}

template <typename T>
std::size_t Family<T>::size() const {
  std::lock_guard lock(mutex_);
  return metrics_.size();
}

template <typename T>
void Family<T>::serialize(std::string& out) const {
  std::lock_guard lock(mutex_);
  if (metrics_.empty()) return;
  out += "# HELP ";
  out += name_;
  out += ' ';
  append_help(out, help_);
  out += "\n# TYPE ";
  out += name_;
  out += ' ';
  out += metric_type_name(T::kType);
  out += '\n';
  for (const auto& [labels, metric] : metrics_) {
    if constexpr (std::is_same_v<T, Histogram>) {
      const auto& bounds = metric->boundaries();
      std::vector<std::uint64_t> counts = metric->bucket_counts();
      std::uint64_t cumulative = 0;
      std::string le;
      for (std::size_t i = 0; i < bounds.size(); ++i) {
        cumulative += counts[i];
        le.clear();
        append_value(le, bounds[i]);
        append_sample(out, name_, "_bucket", labels, static_cast<double>(cumulative), "le", le);
      }
      cumulative += counts.back();
      append_sample(out, name_, "_bucket", labels, static_cast<double>(cumulative), "le", "+Inf");
      append_sample(out, name_, "_sum", labels, metric->sum());
      append_sample(out, name_, "_count", labels, static_cast<double>(cumulative));
    } else {
      append_sample(out, name_, "", labels, metric->Value());
    }
  }
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

// ---------------------------------------------------------------------------------------
// Registry

template <typename T>
Family<T>& Registry::add_family(const std::string& name, const std::string& help, const Labels& constant_labels) {
  std::lock_guard lock(mutex_);
  auto it = families_.find(name);
  if (it != families_.end()) {
    auto* family = dynamic_cast<Family<T>*>(it->second.get());
    if (family == nullptr) {
      throw std::invalid_argument("metric " + name + " is already registered as a " +
                                  std::string(metric_type_name(it->second->type())));
    }
    return *family;
  }
  auto family = std::make_unique<Family<T>>(name, help, constant_labels);
  Family<T>& ref = *family;
  families_.emplace(name, std::move(family));
  return ref;
}

template Family<Counter>& Registry::add_family<Counter>(const std::string&, const std::string&, const Labels&);
template Family<Gauge>& Registry::add_family<Gauge>(const std::string&, const std::string&, const Labels&);
template Family<Histogram>& Registry::add_family<Histogram>(const std::string&, const std::string&, const Labels&);

std::size_t Registry::add_collector(std::function<void()> collector) {
  std::lock_guard lock(mutex_);
  std::size_t id = next_collector_++;
  collectors_.emplace(id, std::move(collector));
  return id;
}

void Registry::remove_collector(std::size_t id) {
  // Waits for a render in progress, so the collector is not running when this returns.
  std::lock_guard render_lock(render_mutex_);
  std::lock_guard lock(mutex_);
  collectors_.erase(id);
}

std::string Registry::render() {
  std::lock_guard render_lock(render_mutex_);
  std::vector<std::function<void()>> collectors;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [id, c] : collectors_) collectors.push_back(c);
  }
  for (const auto& c : collectors) c();
  return serialize();
}

std::string Registry::serialize() const {
  std::string out;
  std::lock_guard lock(mutex_);
  for (const auto& [name, family] : families_) family->serialize(out);
  return out;
}

}  // namespace twincast::control::metrics
