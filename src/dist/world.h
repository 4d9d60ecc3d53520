// Joining a process group the way PyTorch's launcher starts processes: torchrun sets RANK,
// WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT, and every rank meets the others through a
// c10d TCPStore at MASTER_ADDR:MASTER_PORT (rank 0 serves it, unless torchrun's agent already
// does: TORCHELASTIC_USE_AGENT_STORE). The group runs Gloo for CPU tensors and NCCL for CUDA ones.
//
// A watchdog in each rank bumps a heartbeat counter in the store; when a collective fails, the
// survivors read the counters and name the ranks whose heartbeat stopped (a killed or stopped
// process), or rank 0 when the store it serves is gone.
#pragma once

#include <c10/core/Device.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "dist/group.h"

namespace sinkhorn::dist {

/// What torchrun (or a user) told this process about the group.
struct LaunchEnvironment {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  std::string master_address;
  int master_port = 0;
  /// torchrun's agent serves the store (TORCHELASTIC_USE_AGENT_STORE=True): every rank is a client.
  bool agent_store = false;
};

/// The launch environment when WORLD_SIZE is set and above 1, else nullopt (one process). A
/// malformed or missing variable is an Error naming it.
std::optional<LaunchEnvironment> launch_environment();

class World {
 public:
  /// Joins the group; `timeout` bounds the rendezvous and every collective (a lost peer ends the
  /// others within it). `device` is where the solve's tensors live (CUDA: NCCL on LOCAL_RANK's GPU).
  World(const LaunchEnvironment& environment, const at::Device& device, std::chrono::milliseconds timeout);
  ~World();
  World(const World&) = delete;
  World& operator=(const World&) = delete;

  const Group& group() const;
  /// The same group, shared (a backward pass of unrolled gradients may need it after a solve).
  std::shared_ptr<const Group> shared_group() const;
  int rank() const;
  int size() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sinkhorn::dist
