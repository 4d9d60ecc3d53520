// Ranks that are threads of one process, sharing a board instead of a network: the Group of the
// C++ tests of sharded solves (tests/dist/in_process_group_test.cpp), which run P ranks in P
// threads and compare them with one process's solve without any socket.
#pragma once

#include <chrono>
#include <memory>
#include <vector>

#include "dist/group.h"

namespace sinkhorn::dist {

/// P groups, one per rank, over one shared board. Each collective waits for every rank to bring
/// its part (at most `timeout`, then a PeerError naming the ranks that did not come); values are
/// combined in rank order, so results are deterministic.
std::vector<std::shared_ptr<const Group>> make_in_process_groups(
    int ranks, std::chrono::milliseconds timeout = std::chrono::seconds(60));

}  // namespace sinkhorn::dist
