#include "dist/world.h"

#ifdef SINKHORN_HAVE_GLOO
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#endif

#include <c10/util/Logging.h>

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <future>
#include <memory>
#include <mutex>
#include <sstream>
#include <thread>
#include <vector>

#include "dist/nccl_entry.h"
#include "platform/cuda_module_loader.h"
#include "util/check.h"

namespace sinkhorn::dist {
namespace {

#ifdef SINKHORN_HAVE_GLOO
constexpr std::chrono::milliseconds kHeartbeatPeriod{200};
// A rank whose counter did not move over this long is lost (several periods: a busy rank's
// watchdog thread still runs, a killed or stopped one's does not).
constexpr std::chrono::milliseconds kHeartbeatWindow{1500};

std::optional<std::string> variable(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') return std::nullopt;
  return std::string(value);
}

long long integer_variable(const char* name, long long lowest, long long highest) {
  const std::optional<std::string> text = variable(name);
  SINKHORN_CHECK(text, "the environment variable " << name << " is not set; torchrun sets it (launch with "
                                                   << "torchrun --nproc_per_node P, or set RANK, WORLD_SIZE, "
                                                   << "MASTER_ADDR and MASTER_PORT yourself)");
  char* end = nullptr;
  const long long value = std::strtoll(text->c_str(), &end, 10);
  SINKHORN_CHECK(end != text->c_str() && *end == '\0' && value >= lowest && value <= highest,
                 "the environment variable " << name << " must be an integer in [" << lowest << ", " << highest
                                             << "], got '" << *text << "'");
  return value;
}

std::string heartbeat_key(int rank) { return "heartbeat/" + std::to_string(rank); }
#endif

}  // namespace

std::optional<LaunchEnvironment> launch_environment() {
  if (!variable("WORLD_SIZE")) return std::nullopt;
  LaunchEnvironment environment;
  environment.world_size = static_cast<int>(integer_variable("WORLD_SIZE", 1, 1 << 20));
  if (environment.world_size == 1) return std::nullopt;
  environment.rank = static_cast<int>(integer_variable("RANK", 0, environment.world_size - 1));
  environment.local_rank = variable("LOCAL_RANK") ? static_cast<int>(integer_variable("LOCAL_RANK", 0, 1 << 20)) : 0;
  const std::optional<std::string> address = variable("MASTER_ADDR");
  SINKHORN_CHECK(address, "the environment variable MASTER_ADDR is not set; torchrun sets it");
  environment.master_address = *address;
  environment.master_port = static_cast<int>(integer_variable("MASTER_PORT", 1, 65535));
  environment.agent_store = variable("TORCHELASTIC_USE_AGENT_STORE").value_or("") == "True";
  return environment;
}

#ifdef SINKHORN_HAVE_GLOO
struct World::Impl {
  c10::intrusive_ptr<c10d::TCPStore> store;
  c10::intrusive_ptr<c10d::Store> prefixed;
  std::shared_ptr<const Group> group;
  int rank = 0, size = 1;
  std::chrono::milliseconds timeout{};

  std::mutex mutex;
  std::condition_variable wake;
  bool stopping = false;
  std::thread heartbeat;

  void beat() {
    for (;;) {
      try {
        prefixed->add(heartbeat_key(rank), 1);
      } catch (const std::exception&) {
        return;  // the store is gone (rank 0 ended): the collectives will say so
      }
      std::unique_lock<std::mutex> lock(mutex);
      if (wake.wait_for(lock, kHeartbeatPeriod, [this] { return stopping; })) return;
    }
  }

  // After a failed collective: which ranks stopped beating. Runs on the failing rank's thread.
  std::string diagnose() {
    try {
      store->setTimeout(std::chrono::milliseconds(2000));
      std::vector<int64_t> before(size), after(size);
      for (int r = 0; r < size; ++r) before[r] = prefixed->add(heartbeat_key(r), 0);
      std::this_thread::sleep_for(kHeartbeatWindow);
      for (int r = 0; r < size; ++r) after[r] = prefixed->add(heartbeat_key(r), 0);
      std::ostringstream lost;
      int count = 0;
      for (int r = 0; r < size; ++r) {
        if (r != rank && after[r] == before[r]) lost << (count++ ? ", " : "") << r;
      }
      if (count == 0) {
        return "every rank is still alive: one of them did not reach the collective within the timeout of " +
               std::to_string(timeout.count() / 1000.0) + " s (raise --timeout if a rank is just slow)";
      }
      return std::string(count == 1 ? "lost rank " : "lost ranks ") + lost.str() +
             " (it stopped answering: killed, crashed or stopped)";
    } catch (const std::exception&) {
      return "lost rank 0 (its rendezvous store no longer answers: rank 0 ended or crashed)";
    }
  }
};
#endif

#ifndef SINKHORN_HAVE_GLOO
struct World::Impl {};
World::World(const LaunchEnvironment& environment, const at::Device&, std::chrono::milliseconds) {
  throw Error("WORLD_SIZE is " + std::to_string(environment.world_size) +
              " but this build cannot join a process group: it was built without Gloo's headers "
              "(Debian's libgloo-dev; scripts/install-deps.sh installs it): install them and rebuild");
}
World::~World() = default;
const Group& World::group() const { throw InternalError("no group in a build without Gloo"); }
std::shared_ptr<const Group> World::shared_group() const { return {}; }
int World::rank() const { return 0; }
int World::size() const { return 1; }
#else
World::World(const LaunchEnvironment& environment, const at::Device& device, std::chrono::milliseconds timeout)
    : impl_(std::make_unique<Impl>()) {
  Impl& impl = *impl_;
  // c10d logs each failed store request or connection (WARNING and ERROR) with a 20-frame stack
  // trace: after a lost rank, a screenful per survivor that buries the one line saying what
  // happened. Every failure it logs reaches us as an exception, which PeerError reports.
  FLAGS_caffe2_log_level = std::max(FLAGS_caffe2_log_level, 3);  // FATAL only
  impl.rank = environment.rank;
  impl.size = environment.world_size;
  impl.timeout = timeout;
  c10d::TCPStoreOptions store_options;
  store_options.port = static_cast<std::uint16_t>(environment.master_port);
  store_options.isServer = !environment.agent_store && environment.rank == 0;
  store_options.numWorkers = environment.world_size;
  store_options.waitWorkers = false;
  store_options.timeout = timeout;
  store_options.multiTenant = true;
  try {
    // A TCPStore client blocks without bound when the port's listener accepts and never answers
    // as a store (another program on MASTER_PORT): the connection is made on a thread of its own,
    // which this rank leaves behind after the timeout (the process then ends with the error).
    auto connect = std::make_shared<std::packaged_task<c10::intrusive_ptr<c10d::TCPStore>()>>(
        [address = environment.master_address, store_options] {
          return c10::make_intrusive<c10d::TCPStore>(address, store_options);
        });
    std::future<c10::intrusive_ptr<c10d::TCPStore>> connected = connect->get_future();
    std::thread([connect] { (*connect)(); }).detach();
    if (connected.wait_for(timeout + std::chrono::seconds(1)) == std::future_status::timeout) {
      throw PeerError("rank " + std::to_string(environment.rank) + " could not reach the group's store at " +
                      environment.master_address + ":" + std::to_string(environment.master_port) + " within " +
                      std::to_string(timeout.count() / 1000) +
                      " s: something listens there but does not answer as rank 0's store (is MASTER_PORT another "
                      "program's port?)");
    }
    impl.store = connected.get();
  } catch (const PeerError&) {
    throw;
  } catch (const std::exception& error) {
    std::string what = error.what();
    throw PeerError("rank " + std::to_string(environment.rank) + " could not reach the group's store at " +
                    environment.master_address + ":" + std::to_string(environment.master_port) + " within " +
                    std::to_string(timeout.count() / 1000) + " s: " + what.substr(0, what.find('\n')));
  }
  impl.prefixed = c10::make_intrusive<c10d::PrefixStore>("sinkhorn/", impl.store);

  auto process_group = c10::make_intrusive<c10d::ProcessGroup>(impl.prefixed, impl.rank, impl.size);
  // Gloo's rendezvous waits for every rank's address in the store: ranks that never come (a
  // different MASTER_PORT or WORLD_SIZE, a rank that failed to start) end it after the timeout.
  c10::intrusive_ptr<c10d::ProcessGroupGloo> gloo;
  auto gloo_options = c10d::ProcessGroupGloo::Options::create_default(timeout);
  // The solve waits for each collective before it issues the next: one worker thread is enough,
  // and one fewer thread competes for the cores with the ranks' own work.
  gloo_options->threads = 1;
  try {
    gloo = c10::make_intrusive<c10d::ProcessGroupGloo>(c10::make_intrusive<c10d::PrefixStore>("gloo/", impl.prefixed),
                                                       impl.rank, impl.size, gloo_options);
  } catch (const std::exception& error) {
    std::string what = error.what();
    throw PeerError("rank " + std::to_string(impl.rank) + " of " + std::to_string(impl.size) +
                    ": the ranks did not all meet within " + std::to_string(timeout.count() / 1000) +
                    " s (every rank needs the same MASTER_ADDR, MASTER_PORT and WORLD_SIZE, and a distinct RANK): " +
                    what.substr(0, what.find('\n')));
  }
  process_group->setDefaultBackend(c10d::ProcessGroup::BackendType::GLOO);
  process_group->setBackend(c10::DeviceType::CPU, c10d::ProcessGroup::BackendType::GLOO, gloo);
  if (device.is_cuda()) {
    // NCCL comes with the CUDA module (dist/nccl_entry.h), which the device's check loaded.
    if (const MakeNcclBackend make_nccl_backend = nccl_backend_factory(); make_nccl_backend != nullptr) {
      auto nccl = make_nccl_backend(c10::make_intrusive<c10d::PrefixStore>("nccl/", impl.prefixed), impl.rank,
                                            impl.size, timeout);
      process_group->setDefaultBackend(c10d::ProcessGroup::BackendType::NCCL);
      process_group->setBackend(c10::DeviceType::CUDA, c10d::ProcessGroup::BackendType::NCCL, nccl);
    } else {
      // Gloo moves CUDA tensors through host memory: correct, slower than NCCL.
      process_group->setBackend(c10::DeviceType::CUDA, c10d::ProcessGroup::BackendType::GLOO, gloo);
    }
  }
  impl.heartbeat = std::thread([&impl] { impl.beat(); });
  impl.group = make_c10d_group(process_group, [&impl] { return impl.diagnose(); });
}

World::~World() {
  {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    impl_->stopping = true;
  }
  impl_->wake.notify_all();
  if (impl_->heartbeat.joinable()) impl_->heartbeat.join();
}

const Group& World::group() const { return *impl_->group; }
std::shared_ptr<const Group> World::shared_group() const { return impl_->group; }
int World::rank() const { return impl_->rank; }
int World::size() const { return impl_->size; }
#endif

MakeNcclBackend nccl_backend_factory() {
  using Entry = MakeNcclBackend (*)();
  auto entry = reinterpret_cast<Entry>(platform::cuda_module_symbol(kNcclBackendSymbol));
  return entry == nullptr ? nullptr : entry();
}

}  // namespace sinkhorn::dist
