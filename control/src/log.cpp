#include "twincast/control/log.hpp"

#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#ifdef TWINCAST_HAVE_SYSTEMD
#include <systemd/sd-journal.h>
#endif

namespace twincast::control::log {

namespace {

// Beyond this many rate keys, keys idle for a whole interval with nothing suppressed are
// forgotten (keys come from configuration, so this is a guard, not a working size).
constexpr std::size_t kMaxKeys = 4096;

bool bare_safe(char c) {
  const auto u = static_cast<unsigned char>(c);
  return u > 0x20 && u != 0x7f && c != '"' && c != '=' && c != '\\';
}

void append_name(std::string& out, std::string_view name) {
  if (name.empty()) {
    out += '_';
    return;
  }
  if (name[0] >= '0' && name[0] <= '9') out += '_';
  for (const char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
    out += ok ? c : (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : '_';
  }
}

bool is_subject(std::string_view name) {
  return std::find(std::begin(kSubjectFields), std::end(kSubjectFields), name) != std::end(kSubjectFields);
}

void write_all(int fd, std::string_view text) {
  while (!text.empty()) {
    const ssize_t n = ::write(fd, text.data(), text.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // nowhere to complain to
    text.remove_prefix(static_cast<std::size_t>(n));
  }
}

void write_stderr(const Record& r) {
  std::string line = format(r);
  line += '\n';
  write_all(STDERR_FILENO, line);
}

}  // namespace

Field::Field(std::string_view n, double v) : name(n) {
  char buf[64];
  const auto res = std::to_chars(buf, buf + sizeof buf, v);
  value.assign(buf, res.ptr);
}

void append_value(std::string& out, std::string_view value) {
  if (!value.empty() && std::all_of(value.begin(), value.end(), bare_safe)) {
    out += value;
    return;
  }
  out += '"';
  for (const char c : value) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
          char esc[8];
          std::snprintf(esc, sizeof esc, "\\u%04x", static_cast<unsigned>(static_cast<unsigned char>(c)));
          out += esc;
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

std::string format(const Record& r) {
  std::string out;
  out.reserve(64 + r.message.size());
  out += "level=";
  out += level_name(r.level);
  out += " cause=";
  append_value(out, r.cause);
  for (const Field& f : r.fields) {
    out += ' ';
    append_name(out, f.name);
    out += '=';
    append_value(out, f.value);
  }
  out += " msg=";
  append_value(out, r.message);
  if (r.suppressed != 0) {
    out += " suppressed=";
    out += std::to_string(r.suppressed);
  }
  return out;
}

Sink stderr_sink() { return write_stderr; }

Sink journal_sink() {
#ifdef TWINCAST_HAVE_SYSTEMD
  return [](const Record& r) {
    // Each journal field is "NAME=value"; values may hold any bytes (sd_journal_sendv
    // takes lengths), so no escaping beyond the MESSAGE's own logfmt.
    std::vector<std::string> items;
    items.reserve(r.fields.size() + 6);
    items.push_back("MESSAGE=" + format(r));
    items.push_back("PRIORITY=" + std::to_string(level_priority(r.level)));
    items.push_back(std::string("SYSLOG_IDENTIFIER=") + program_invocation_short_name);
    items.push_back("TWINCAST_CAUSE=" + std::string(r.cause));
    for (const Field& f : r.fields) {
      std::string name;
      append_name(name, f.name);
      std::string item = "TWINCAST_";
      for (const char c : name) item += (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;
      item += '=';
      item += f.value;
      items.push_back(std::move(item));
    }
    if (r.suppressed != 0) items.push_back("TWINCAST_SUPPRESSED=" + std::to_string(r.suppressed));
    std::vector<iovec> iov;
    iov.reserve(items.size());
    for (auto& s : items) iov.push_back(iovec{s.data(), s.size()});
    if (sd_journal_sendv(iov.data(), static_cast<int>(iov.size())) < 0) write_stderr(r);
  };
#else
  return write_stderr;
#endif
}

bool is_journal_stream(int fd, const char* journal_stream) {
  if (journal_stream == nullptr || *journal_stream == '\0') return false;
  struct stat st {};
  if (::fstat(fd, &st) != 0) return false;
  const std::string_view v(journal_stream);
  const std::size_t colon = v.find(':');
  if (colon == std::string_view::npos) return false;
  unsigned long long dev = 0;
  unsigned long long ino = 0;
  const auto d = std::from_chars(v.data(), v.data() + colon, dev);
  const auto i = std::from_chars(v.data() + colon + 1, v.data() + v.size(), ino);
  if (d.ec != std::errc() || d.ptr != v.data() + colon || i.ec != std::errc() || i.ptr != v.data() + v.size()) {
    return false;
  }
  return dev == static_cast<unsigned long long>(st.st_dev) && ino == static_cast<unsigned long long>(st.st_ino);
}

Sink default_sink() {
  return is_journal_stream(STDERR_FILENO, std::getenv("JOURNAL_STREAM")) ? journal_sink() : stderr_sink();
}

// ---------------------------------------------------------------------------------------
// Logger

Logger::Logger(Options options) : options_(std::move(options)) {
  if (!options_.sink) options_.sink = default_sink();
  if (!options_.clock) options_.clock = [] { return std::chrono::steady_clock::now(); };
}

std::string Logger::rate_key(std::string_view cause, std::span<const Field> fields) {
  std::string key(cause);
  for (const Field& f : fields) {
    if (!is_subject(f.name)) continue;
    key += ' ';
    key += f.name;
    key += '=';
    append_value(key, f.value);
  }
  return key;
}

bool Logger::write(Level level, std::string_view cause, std::span<const Field> fields, std::string_view message) {
  if (level < options_.min_level) return false;
  const std::string key = rate_key(cause, fields);
  const std::lock_guard lock(mutex_);
  const auto now = options_.clock();
  auto it = keys_.find(key);
  if (it == keys_.end()) {
    if (keys_.size() >= kMaxKeys) prune(now);
    it = keys_.emplace(key, KeyState{}).first;
  } else if (now - it->second.last < options_.interval) {
    ++it->second.suppressed;
    ++suppressed_total_;
    return false;
  }
  Record record{.level = level, .cause = cause, .fields = fields, .message = message, .suppressed = it->second.suppressed};
  it->second.last = now;
  it->second.suppressed = 0;
  options_.sink(record);
  return true;
}

void Logger::prune(std::chrono::steady_clock::time_point now) {
  std::erase_if(keys_, [&](const auto& kv) {
    return kv.second.suppressed == 0 && now - kv.second.last >= options_.interval;
  });
}

std::uint64_t Logger::suppressed_total() const {
  const std::lock_guard lock(mutex_);
  return suppressed_total_;
}

Logger& process_logger() {
  static Logger logger;
  return logger;
}

}  // namespace twincast::control::log
