// EAL bring-up: the command line from the config, then rte_eal_init once per process, and
// the calling (control) thread's affinity widened to the CPUs no worker polls.
#include <pthread.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <sched.h>

#include <cctype>
#include <stdexcept>

#include "twincast/dataplane/dataplane.hpp"

namespace twincast::dataplane {

bool is_pci_address(const std::string& device) {
  // [dddd:]bb:dd.f with hex digits.
  const std::string d = device.substr(0, device.find(','));
  auto hex = [&](std::size_t from, std::size_t n) {
    if (from + n > d.size()) return false;
    for (std::size_t i = from; i < from + n; ++i) {
      if (std::isxdigit(static_cast<unsigned char>(d[i])) == 0) return false;
    }
    return true;
  };
  std::size_t at = 0;
  if (d.size() == 12) {
    if (!hex(0, 4) || d[4] != ':') return false;
    at = 5;
  } else if (d.size() != 7) {
    return false;
  }
  return hex(at, 2) && d[at + 2] == ':' && hex(at + 3, 2) && d[at + 5] == '.' && hex(at + 6, 1);
}

std::vector<std::string> eal_arguments(const EalConfig& eal, const std::vector<PortConfig>& ports,
                                       const std::string& argv0) {
  std::vector<std::string> a{argv0, "-l", eal.lcores, "-m", std::to_string(eal.memory_mb)};
  if (!eal.hugepages) {
    a.emplace_back("--no-huge");
    a.emplace_back("--no-shconf");
  }
  if (!eal.file_prefix.empty()) {
    a.emplace_back("--file-prefix");
    a.push_back(eal.file_prefix);
  }
  bool any_pci = false;
  for (const PortConfig& p : ports) {
    if (is_pci_address(p.device)) {
      any_pci = true;
      a.emplace_back("-a");
    } else {
      a.emplace_back("--vdev");
    }
    a.push_back(p.device);
  }
  if (!any_pci) a.emplace_back("--no-pci");
  bool has_log_level = false;
  for (const std::string& x : eal.extra_args) {
    if (x.rfind("--log-level", 0) == 0) has_log_level = true;
  }
  if (!has_log_level) a.emplace_back("--log-level=warning");
  a.insert(a.end(), eal.extra_args.begin(), eal.extra_args.end());
  return a;
}

void init_eal(const ApplianceConfig& config, const std::string& argv0) {
  std::vector<std::string> args = eal_arguments(config.eal, config.ports, argv0);
  std::vector<char*> argv;
  for (std::string& s : args) argv.push_back(s.data());
  argv.push_back(nullptr);
  // The CPUs this process may use, before the EAL pins the calling thread to the main lcore.
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  const bool have_allowed = sched_getaffinity(0, sizeof allowed, &allowed) == 0;
  if (rte_eal_init(static_cast<int>(args.size()), argv.data()) < 0) {
    throw std::runtime_error(std::string("DPDK EAL initialisation failed: ") + rte_strerror(rte_errno));
  }
  // The control plane's threads (HTTP servers, packager, transcoder, SRT) are started from
  // this thread and inherit its affinity: give it every allowed CPU that no worker lcore
  // busy-polls, not just the main lcore's one.
  if (!have_allowed) return;
  for (unsigned l = rte_get_next_lcore(static_cast<unsigned>(-1), 1, 0); l < RTE_MAX_LCORE;
       l = rte_get_next_lcore(l, 1, 0)) {
    const int cpu = rte_lcore_to_cpu_id(static_cast<int>(l));
    if (cpu >= 0 && cpu < CPU_SETSIZE) CPU_CLR(static_cast<std::size_t>(cpu), &allowed);
  }
  if (CPU_COUNT(&allowed) > 0) (void)pthread_setaffinity_np(pthread_self(), sizeof allowed, &allowed);
}

}  // namespace twincast::dataplane
