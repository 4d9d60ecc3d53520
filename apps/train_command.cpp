// sinkhorn train: fits a generator to data by minimising a Sinkhorn loss (Genevay et al. 2018).
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <iomanip>
#include <iostream>
#include <string>
#include <utility>

#include "arguments.h"
#include "cli.h"
#include "dist/world.h"
#include "gen/trainer.h"
#include "loss_options.h"
#include "progress.h"
#include "train_options.h"
#include "util/check.h"

namespace sinkhorn::cli {
namespace {

// Ctrl-C (SIGINT) and SIGTERM (a scheduler's or `kill`'s stop) alike ask the run to stop after its
// step (or between its critic updates), saving a checkpoint; the signal decides the exit status
// (128 + its number, as a shell reports a process killed by it). The handler runs once: it puts
// both signals back to their default action (SA_RESETHAND does so for the one delivered, before
// the handler runs), so a second Ctrl-C or SIGTERM ends the process at once, for a user or a
// scheduler that cannot wait for the step to end.
std::atomic<bool> stop_requested{false};
std::atomic<int> stop_signal{0};
static_assert(std::atomic<bool>::is_always_lock_free && std::atomic<int>::is_always_lock_free,
              "signal handlers may only touch lock-free atomics");
extern "C" void request_stop(int signal) {
  const int saved_errno = errno;
  stop_signal.store(signal);
  stop_requested.store(true);
  struct sigaction default_action {};
  default_action.sa_handler = SIG_DFL;
  sigemptyset(&default_action.sa_mask);
  ::sigaction(SIGINT, &default_action, nullptr);  // sigaction(2) and write(2) are async-signal-safe
  ::sigaction(SIGTERM, &default_action, nullptr);
  // iostreams are not async-signal-safe. A leading newline ends a progress bar's line.
  static const char kInterrupt[] =
      "\nsinkhorn train: interrupted: stopping after this step and saving a checkpoint; press Ctrl-C again to quit "
      "at once without saving\n";
  static const char kTerminate[] =
      "\nsinkhorn train: SIGTERM: stopping after this step and saving a checkpoint; send SIGTERM again to quit at "
      "once without saving\n";
  const char* text = signal == SIGTERM ? kTerminate : kInterrupt;
  const size_t size = signal == SIGTERM ? sizeof(kTerminate) - 1 : sizeof(kInterrupt) - 1;
  (void)!::write(STDERR_FILENO, text, size);
  errno = saved_errno;
}

// Installs the stop handler for SIGINT and SIGTERM for the duration of a run, and restores the
// previous ones.
class StopSignalGuard {
 public:
  StopSignalGuard() {
    struct sigaction action {};
    action.sa_handler = request_stop;
    sigemptyset(&action.sa_mask);
    // A second Ctrl-C must not wait for the first one's handler to end: block neither signal in it.
    // SA_RESTART: a write in progress completes rather than failing with EINTR.
    action.sa_flags = SA_RESTART | SA_RESETHAND;
    ::sigaction(SIGINT, &action, &previous_interrupt_);
    ::sigaction(SIGTERM, &action, &previous_terminate_);
  }
  ~StopSignalGuard() {
    ::sigaction(SIGINT, &previous_interrupt_, nullptr);
    ::sigaction(SIGTERM, &previous_terminate_, nullptr);
  }
  StopSignalGuard(const StopSignalGuard&) = delete;
  StopSignalGuard& operator=(const StopSignalGuard&) = delete;

 private:
  struct sigaction previous_interrupt_ {}, previous_terminate_ {};
};

ArgumentParser train_parser() {
  ArgumentParser parser(
      "sinkhorn train [options]",
      "Trains a generator g(z) by minimising a Sinkhorn loss between generated and data batches\n"
      "(Genevay, Peyre, Cuturi 2018). Writes config.json, metrics.csv, pictures and checkpoint.pt\n"
      "into --out (locked while the run lasts); --resume continues a run exactly; Ctrl-C or SIGTERM saves\n"
      "a checkpoint and stops (exit status 130 or 143; a second one quits at once without saving).\n"
      "Defaults depend on --data: toys train an MLP on raw 2-D points; mnist uses the paper's MLP\n"
      "(2-D uniform latent, 500-500 softplus, sigmoid) with blur 1; cifar10 a DCGAN generator.\n"
      "The loss flags default as for `sinkhorn divergence` except --blur (toys 0.1, images 1, learned\n"
      "cost 0.05), --p 1 for a learned cost (the paper's |f(x) - f(y)|) and --tolerance 1e-3 (a batch's\n"
      "sampling noise is far larger).\n"
      "Under torchrun (WORLD_SIZE > 1) the ranks train one model: --batch-size stays the global\n"
      "batch, each rank generates its share, the loss is the whole batch's; rank 0 writes --out.\n"
      "Use torchrun when the generator's (or critic's) forward and backward dominate a step (see\n"
      "--timings): each rank runs them on its share; the batch is all-gathered once and the loss\n"
      "solved on every rank, its three problems split over the ranks, or sharded for batches of\n"
      "thousands (--data-parallel-solve, said once). Each step pays two or three collectives: on\n"
      "one machine's loopback 0.3-1.5 ms each, more than a toy's step saves (docs/distributed.md).");
  add_train_options(parser);
  parser.integer("threads", "N", "CPU threads (default: every core)", 0, kMaxThreads)
      .option("timeout", "SECONDS", "under torchrun: a rank lost or stalled this long ends the others (default 60)")
      .flag("resume", "continue the run in --out from its checkpoint, with its settings (" + resumable_flags() + " may change)")
      .flag("overwrite", "start again in an --out folder that already holds a run")
      .flag("timings", "at the end, where the steps spent their time, per step (under torchrun every rank says its own)");
  add_loss_options(parser);
  return parser;
}

// Problems that did not stop the run, one line each; on a terminal after the progress bar's line.
void print_warnings(std::ostream& err, bool terminal, const std::vector<std::string>& warnings) {
  for (const std::string& warning : warnings) err << (terminal ? "\n" : "") << "sinkhorn train: warning: " << warning << "\n";
}

// The --timings line: milliseconds per step of each phase (gen::StepTimings).
void print_timings(std::ostream& err, const gen::StepTimings& t, const dist::World* world) {
  if (t.steps == 0) return;
  const double per_step = 1e3 / static_cast<double>(t.steps);
  const double phases = t.critic + t.generate + t.gather + t.solve + t.backward + t.reduce + t.update;
  err << "sinkhorn train: " << (world ? "rank " + std::to_string(world->rank()) + ": " : "") << "time per step over "
      << t.steps << " steps, in ms: ";
  // other: what a step does between its phases (a learned cost's features of the generated batch,
  // the finiteness checks and, on a GPU, their waits).
  const std::pair<const char*, double> parts[] = {{"critic", t.critic},     {"generate", t.generate},
                                                   {"gather", t.gather},     {"solve", t.solve},
                                                   {"backward", t.backward}, {"reduce", t.reduce},
                                                   {"update", t.update},     {"other", std::max(0.0, t.step - phases)},
                                                   {"total", t.step}};
  bool first = true;
  for (const auto& [name, seconds] : parts) {
    if (seconds == 0 && std::string(name) != "total") continue;
    err << (first ? "" : ", ") << name << " " << std::fixed << std::setprecision(3) << seconds * per_step;
    first = false;
  }
  err << std::defaultfloat << "\n";
}

}  // namespace

int train_command(const std::vector<std::string>& arguments, std::ostream& out_stream, std::ostream& err_stream) {
  const ArgumentParser parser = train_parser();
  const std::optional<ParsedArguments> parsed = parse_command(parser, arguments, out_stream);
  if (!parsed) return 0;  // --help
  const ParsedArguments& args = *parsed;
  const std::chrono::milliseconds timeout = timeout_from(args);  // checked with or without torchrun
  // From here on a stop signal is a request: a run that is starting stops at its first step boundary,
  // after a checkpoint, instead of dying half way through writing its folder.
  stop_requested.store(false);
  stop_signal.store(0);
  StopSignalGuard guard;
  // Under torchrun the ranks train together (gen::Trainer::start); rank 0 alone speaks and writes.
  const std::optional<dist::LaunchEnvironment> launch = dist::launch_environment();
  std::unique_ptr<dist::World> world;
  if (launch) {
    at::Device device = args.value("device") ? device_from(args) : at::Device(at::kCPU);
    if (device.is_cuda() && !device.has_index()) device = at::Device(at::kCUDA, launch->local_rank);
    world = std::make_unique<dist::World>(*launch, device, timeout);
  }
  const dist::Group* group = world ? &world->group() : nullptr;
  std::ostream silent(nullptr);
  std::ostream& out = !world || world->rank() == 0 ? out_stream : silent;
  std::ostream& err = !world || world->rank() == 0 ? err_stream : silent;
  std::optional<gen::Trainer> trainer;
  if (args.flag("resume")) {
    SINKHORN_CHECK(!args.flag("overwrite"), "--resume and --overwrite exclude each other");
    SINKHORN_CHECK(args.value("out").has_value(), "--resume needs --out, the run folder to continue");
    // A resumed run keeps its saved settings: a flag that would change them silently is refused.
    for (const std::string& given : args.given_options()) {
      SINKHORN_CHECK(may_change_on_resume(given), "--" << given << " cannot change when resuming (the run keeps the settings "
                                   << "in its checkpoint; only " << resumable_flags() << " may change)");
    }
    for (const char* flag : {"coarse-correction", "no-coarse-correction"}) {
      SINKHORN_CHECK(!args.flag(flag), "--" << flag << " cannot change when resuming (the run keeps the setting in its checkpoint)");
    }
    gen::ResumeOverrides overrides;
    overrides.steps = args.integer("steps");
    overrides.learning_rate = args.number("lr");
    if (args.value("device")) overrides.device = device_from(args);
    overrides.settings = resumed_settings_from(args);
    if (launch && overrides.device && overrides.device->is_cuda() && !overrides.device->has_index()) {
      overrides.device = at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(launch->local_rank));
    }
    trainer.emplace(gen::Trainer::resume(*args.value("out"), overrides, group));
    out << "resuming " << trainer->config().out_dir << " at step " << trainer->step() << " of "
        << trainer->config().steps << (trainer->config().device.is_cpu() ? "" : " on " + trainer->config().device.str())
        << "\n";
  } else {
    gen::TrainConfig config = train_config_from(args);
    if (args.value("device")) config.device = device_from(args);  // refused here when this process cannot run there
    if (launch && config.device.is_cuda() && !config.device.has_index()) {
      config.device = at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(launch->local_rank));
    }
    trainer.emplace(gen::Trainer::start(std::move(config), args.flag("overwrite"), group));
    const gen::TrainConfig& c = trainer->config();
    out << "training a " << c.generator.architecture << " generator on " << c.data.name << " with "
        << to_string(c.loss.loss) << " (p " << c.loss.p << ", blur " << c.loss.blur << ", " << to_string(c.cost)
        << " cost) for " << c.steps << " steps into " << c.out_dir
        << (c.device.is_cpu() ? "" : " on " + c.device.str()) << "\n";
  }
  for (const std::string& repair : trainer->repairs()) err << "sinkhorn train: repaired: " << repair << "\n";
  out << std::flush;

  if (args.flag("timings")) trainer->time_phases_on_device(true);
  const bool terminal = &err == &std::cerr && ::isatty(STDERR_FILENO);
  ProgressReporter progress(err, terminal, trainer->step(), trainer->config().steps);
  const gen::TrainOutcome outcome = trainer->run(
      [&](const gen::StepReport& r) {
        print_warnings(err, terminal, r.warnings);
        for (const std::string& note : r.notes) err << (terminal ? "\n" : "") << "sinkhorn train: " << note << "\n";
        progress.update(r.step, r.loss, r.critic_loss, r.eval_divergence);
      },
      &stop_requested);
  progress.finish();
  print_warnings(err, false, outcome.warnings);
  if (args.flag("timings")) print_timings(err_stream, trainer->timings(), world.get());
  switch (outcome.status) {
    case gen::TrainStatus::interrupted: {
      const int signal = stop_signal.load();
      err << "sinkhorn train: " << (signal == SIGTERM ? "terminated (SIGTERM)" : "interrupted") << " at step "
          << outcome.step << "; " << outcome.message << " (continue with --resume --out " << trainer->config().out_dir
          << ")\n";
      return 128 + (signal == SIGTERM ? SIGTERM : SIGINT);
    }
    case gen::TrainStatus::non_finite:
      err << "sinkhorn train: error: " << outcome.message << "\n";
      return 3;
    case gen::TrainStatus::finished:
      break;
  }
  const gen::Evaluation evaluation = outcome.evaluation ? *outcome.evaluation : trainer->evaluate();
  out << "done: " << trainer->step() << " steps; held-out divergence " << evaluation.divergence;
  if (evaluation.modes_covered) out << "; modes covered " << *evaluation.modes_covered << "/" << *evaluation.modes;
  out << "\nresults in " << trainer->config().out_dir << " (metrics.csv, *_final.png, checkpoint.pt)\n";
  return 0;
}

}  // namespace sinkhorn::cli
