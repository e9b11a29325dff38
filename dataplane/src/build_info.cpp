#include "twincast/dataplane/build_info.hpp"

#include <rte_version.h>

namespace twincast::dataplane {

std::string dpdk_version() { return rte_version(); }

}  // namespace twincast::dataplane
