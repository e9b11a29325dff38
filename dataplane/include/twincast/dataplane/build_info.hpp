// What the data plane was built against, for `twincastd --version` and bug reports.
#pragma once

#include <string>

namespace twincast::dataplane {

// The DPDK version string of the linked library, for example "DPDK 22.11.11".
[[nodiscard]] std::string dpdk_version();

}  // namespace twincast::dataplane
