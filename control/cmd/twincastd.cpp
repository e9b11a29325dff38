// twincastd — the appliance: loads and validates the channel map, brings up the DPDK data
// plane and the SRT ingest, and runs until SIGINT or SIGTERM, logging a status line per
// port and input every --status-interval seconds. SIGHUP re-reads the file and applies
// the difference (Appliance::reload), as POST /api/v1/reload does.
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <string_view>
#include <vector>

#include "twincast/control/appliance.hpp"
#include "twincast/control/config.hpp"
#include "twincast/control/log.hpp"
#include "twincast/dataplane/build_info.hpp"

#include <sys/resource.h>

#ifdef TWINCAST_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#else
static int sd_notify(int, const char*) { return 0; }
static int sd_watchdog_enabled(int, std::uint64_t*) { return 0; }
#endif

namespace {

namespace log = twincast::control::log;

constexpr const char* kUsage =
    "usage: twincastd [--status-interval SECONDS] FILE   run the appliance on a channel map\n"
    "       twincastd --check FILE                      validate a channel map (see config/README.md)\n"
    "       twincastd --version\n";

// The exit status of a map twincastd refuses to run (sysexits' EX_CONFIG, which systemd
// shows as "CONFIG"): the unit's RestartPreventExitStatus, so a broken map is not restarted
// every RestartSec for ever.
constexpr int kExitConfig = 78;

// Prints "FILE: OK (<config_summary>)" and returns 0, or every error on stderr and returns 1.
int check(const std::string& file) {
  const auto result = twincast::control::load_config(file);
  if (!result.ok()) {
    std::fputs(twincast::control::format_errors(result.errors, file).c_str(), stderr);
    return 1;
  }
  std::printf("%s: OK (%s)\n", file.c_str(), twincast::control::config_summary(*result.config).c_str());
  return 0;
}

// A summary line, then every error of a configuration, one structured line each; not
// rate-limited (a report that drops errors is worse than none).
void log_config_errors(const std::vector<twincast::control::ConfigError>& errors, const std::string& file,
                       std::string_view cause, const std::string& summary) {
  static log::Logger report(log::Options{.interval = std::chrono::seconds(0)});
  report.write(log::Level::kError, cause, {{"file", file}, {"errors", errors.size()}}, summary);
  for (const auto& e : errors) {
    report.write(log::Level::kError, cause,
                 {{"file", file}, {"line", e.line}, {"column", e.column}, {"path", e.path}}, e.message);
  }
}

// The soft RLIMIT_NOFILE raised to the hard limit: the HLS origin's connections (1024 by
// default) and the API's (512) exceed the usual soft limit of 1024 descriptors.
void raise_fd_limit() {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0 || lim.rlim_cur >= lim.rlim_max) return;
  const rlim_t before = lim.rlim_cur;
  lim.rlim_cur = lim.rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &lim) != 0) {
    log::warn("fd_limit", {{"soft", static_cast<std::uint64_t>(before)}},
              std::string("twincastd: cannot raise RLIMIT_NOFILE: ") + std::strerror(errno));
  }
}

int run(const std::string& file, const char* argv0, unsigned status_interval_s) {
  raise_fd_limit();
  const auto result = twincast::control::load_config(file);
  if (!result.ok()) {
    log_config_errors(result.errors, file, "config_invalid", "twincastd: " + file + " has errors; not starting");
    return kExitConfig;
  }
  // Every thread (EAL's, libsrt's) inherits these blocked; only sigtimedwait below sees them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  try {
    twincast::control::Appliance appliance(*result.config, argv0, file);
    appliance.start();
    const auto& control = result.config->control;
    const std::size_t n_channels = result.config->channels.size();
    log::info("start",
              {{"channels", n_channels}, {"file", file}, {"api", control.api_listen}, {"metrics", control.metrics_listen}},
              "twincastd: running " + std::to_string(n_channels) + " channels from " + file + "; API on " +
                  control.api_listen + ", metrics on " + control.metrics_listen);
    // READY=1 with what `systemctl status` shows; again after each reload, which may change it.
    std::size_t shown_channels = 0;
    auto notify_ready = [&](const char* state) {
      shown_channels = appliance.channel_count();
      sd_notify(0, (state + std::string("STATUS=") + std::to_string(shown_channels) + " channels").c_str());
    };
    notify_ready("READY=1\n");
    // Under systemd's watchdog, wake at half its interval to say we are alive.
    std::uint64_t watchdog_us = 0;
    const bool watchdog = sd_watchdog_enabled(0, &watchdog_us) > 0 && watchdog_us > 0;
    auto next_status = std::chrono::steady_clock::now() + std::chrono::seconds(status_interval_s);
    for (;;) {
      auto wait = std::chrono::duration_cast<std::chrono::microseconds>(next_status - std::chrono::steady_clock::now());
      if (watchdog) wait = std::min(wait, std::chrono::microseconds(watchdog_us / 2));
      if (wait.count() < 0) wait = std::chrono::microseconds(0);
      timespec timeout{static_cast<time_t>(wait.count() / 1'000'000), static_cast<long>(wait.count() % 1'000'000) * 1000};
      const int sig = sigtimedwait(&signals, nullptr, &timeout);
      if (sig == SIGINT || sig == SIGTERM) {
        const char* name = sig == SIGINT ? "SIGINT" : "SIGTERM";
        log::info("stop", {{"signal", name}}, std::string("twincastd: ") + name + ", stopping");
        break;
      }
      if (sig == SIGHUP) {
        sd_notify(0, "RELOADING=1");
        const auto outcome = appliance.reload();
        // Every reload is an operator's action: its outcome is never rate-limited away.
        static log::Logger reloads(log::Options{.interval = std::chrono::seconds(0)});
        if (outcome.error) {
          reloads.write(log::Level::kError, "reload_refused", {{"file", file}},
                     "twincastd: SIGHUP: reload of " + file + " refused, the running configuration stays: " + *outcome.error);
          // Refused, yet the SRT ingest stopped for it may not have come back.
          if (outcome.warning)
            reloads.write(log::Level::kError, "reload_incomplete", {{"file", file}},
                          "twincastd: SIGHUP: reload of " + file + " refused, and " + *outcome.warning);
        } else {
          const auto& d = outcome.diff;
          reloads.write(log::Level::kNotice, "reload",
                      {{"file", file},
                       {"added", std::to_string(d.channels_added.size())},
                       {"removed", std::to_string(d.channels_removed.size())},
                       {"restarted", std::to_string(d.channels_changed.size())},
                       {"updated", std::to_string(d.channels_updated.size())},
                       {"unchanged", std::to_string(d.channels_unchanged.size())},
                       {"srt_restarted", outcome.srt_restarted ? "1" : "0"}},
                      "twincastd: SIGHUP: reloaded " + file);
          if (outcome.warning)
            reloads.write(log::Level::kError, "reload_incomplete", {{"file", file}},
                          "twincastd: SIGHUP: reloaded " + file + ", but " + *outcome.warning);
        }
        notify_ready("READY=1\n");
      }
      // A reload through the API (POST /api/v1/reload) changes it too: seen at the next wake.
      if (appliance.channel_count() != shown_channels) notify_ready("");
      if (watchdog) sd_notify(0, "WATCHDOG=1");
      if (std::chrono::steady_clock::now() >= next_status) {
        std::fputs(appliance.status().c_str(), stderr);
        std::fflush(stderr);
        next_status = std::chrono::steady_clock::now() + std::chrono::seconds(status_interval_s);
      }
    }
    sd_notify(0, "STOPPING=1");
    appliance.stop();
    std::fputs(appliance.status().c_str(), stderr);
  } catch (const std::exception& e) {
    log::error("fatal", {}, std::string("twincastd: ") + e.what());
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 && (std::strcmp(argv[1], "--version") == 0 || std::strcmp(argv[1], "-V") == 0)) {
    std::printf("twincastd %s (%s)\n", TWINCAST_VERSION, twincast::dataplane::dpdk_version().c_str());
    return 0;
  }
  if (argc == 3 && std::strcmp(argv[1], "--check") == 0) return check(argv[2]);
  unsigned interval = 10;
  int i = 1;
  if (argc == 4 && std::strcmp(argv[1], "--status-interval") == 0) {
    interval = static_cast<unsigned>(std::strtoul(argv[2], nullptr, 10));
    if (interval == 0) interval = 10;
    i = 3;
  }
  if (argc == i + 1 && argv[i][0] != '-') return run(argv[i], argv[0], interval);
  std::fputs(kUsage, stderr);
  return 2;
}
