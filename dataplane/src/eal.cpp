// EAL bring-up: the command line from the config, then rte_eal_init once per process, and
// the calling (control) thread's affinity widened to the CPUs no worker polls.
#include <pthread.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_pci.h>
#include <sched.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
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

std::string device_name(const std::string& device) {
  const std::string name = device.substr(0, device.find(','));
  rte_pci_addr addr{};
  if (!is_pci_address(name) || rte_pci_addr_parse(name.c_str(), &addr) != 0) return name;
  // The PCI bus names the device "0000:3b:00.1" however -a wrote it ("3b:00.1",
  // "0000:3B:00.1"), and rte_eth_dev_get_port_by_name compares names as they are.
  char canonical[PCI_PRI_STR_SIZE + 1];
  rte_pci_device_name(&addr, canonical, sizeof canonical);
  return canonical;
}

std::vector<std::string> eal_arguments(const EalConfig& eal, const std::vector<PortConfig>& ports,
                                       const std::string& argv0) {
  std::vector<std::string> a{argv0, "-l", eal.lcores};
  // EAL refuses -m beside --socket-mem (memory per NUMA node): that one replaces memory_mb.
  const bool has_socket_mem = std::any_of(eal.extra_args.begin(), eal.extra_args.end(),
                                          [](const std::string& x) { return x.rfind("--socket-mem", 0) == 0; });
  if (!has_socket_mem) {
    a.emplace_back("-m");
    a.push_back(std::to_string(eal.memory_mb));
  }
  // EAL makes the lowest lcore listed its main lcore; ours is the first listed ("2,1": the
  // main loop on 2, the worker on 1). EAL reads a range "3-1" as 1-3.
  unsigned long first = 0;
  unsigned long lowest = ~0UL;
  for (std::size_t from = 0; from < eal.lcores.size();) {
    const std::size_t comma = std::min(eal.lcores.find(',', from), eal.lcores.size());
    const std::string item = eal.lcores.substr(from, comma - from);
    unsigned long low = std::strtoul(item.c_str(), nullptr, 10);
    if (const std::size_t dash = item.find('-'); dash != std::string::npos)
      low = std::min(low, std::strtoul(item.c_str() + dash + 1, nullptr, 10));
    if (from == 0) first = low;
    lowest = std::min(lowest, low);
    from = comma + 1;
  }
  if (!eal.lcores.empty() && first != lowest) {
    a.emplace_back("--main-lcore");
    a.push_back(std::to_string(first));
  }
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
