#include "util/interrupt.h"

#include <atomic>

#include "sinkhorn/error.h"

namespace sinkhorn::util {
namespace {

std::atomic<InterruptPoll> installed_poll{nullptr};

}  // namespace

void set_interrupt_poll(InterruptPoll poll) { installed_poll.store(poll); }

void throw_if_interrupted() {
  const InterruptPoll poll = installed_poll.load(std::memory_order_relaxed);
  if (poll != nullptr && poll()) throw Interrupted();
}

}  // namespace sinkhorn::util
