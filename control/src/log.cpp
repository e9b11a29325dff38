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

// The length of the character `s` starts with when it is printable UTF-8 as journald sees
// it (utf8_is_printable: shortest form, no surrogate, noncharacter or C0/C1 control), else
// 0. journald keeps a MESSAGE with anything else as binary, which journalctl shows as
// "[N blob data]" instead of the line.
std::size_t printable_length(std::string_view s) {
  const auto b = static_cast<unsigned char>(s[0]);
  if (b < 0x80) return b >= 0x20 && b != 0x7f ? 1 : 0;
  std::size_t n = 0;
  char32_t cp = 0;
  if (b >= 0xc2 && b < 0xe0) {
    n = 2, cp = b & 0x1fu;
  } else if (b >= 0xe0 && b < 0xf0) {
    n = 3, cp = b & 0x0fu;
  } else if (b >= 0xf0 && b < 0xf5) {
    n = 4, cp = b & 0x07u;
  }
  if (n == 0 || s.size() < n) return 0;
  for (std::size_t i = 1; i < n; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if ((c & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (c & 0x3fu);
  }
  const char32_t shortest = n == 2 ? 0x80 : n == 3 ? 0x800 : 0x10000;
  if (cp < shortest || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
  if (cp <= 0x9f || (cp >= 0xfdd0 && cp <= 0xfdef) || (cp & 0xfffe) == 0xfffe) return 0;
  return n;
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
  bool bare = !value.empty();
  for (std::size_t i = 0; bare && i < value.size();) {
    const std::size_t n = printable_length(value.substr(i));
    bare = n > 1 || (n == 1 && bare_safe(value[i]));
    i += n;
  }
  if (bare) {
    out += value;
    return;
  }
  out += '"';
  for (std::size_t i = 0; i < value.size(); ++i) {
    const char c = value[i];
    const std::size_t n = printable_length(value.substr(i));
    if (n > 1) {
      out += value.substr(i, n);
      i += n - 1;
      continue;
    }
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
        if (n == 0) {  // a control byte, or one that is not (printable) UTF-8: one byte each
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
