// sinkhorn train: fits a generator to data by minimising a Sinkhorn loss (Genevay et al. 2018).
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <iostream>

#include "arguments.h"
#include "cli.h"
#include "gen/data/toy2d.h"
#include "gen/trainer.h"
#include "loss_options.h"
#include "progress.h"
#include "util/check.h"

namespace sinkhorn::cli {
namespace {

// Ctrl-C (SIGINT) and SIGTERM (a scheduler's or `kill`'s stop) alike ask the run to stop after its
// step, saving a checkpoint; the signal decides the exit status (128 + its number, as a shell
// reports a process killed by it).
std::atomic<bool> stop_requested{false};
std::atomic<int> stop_signal{0};
static_assert(std::atomic<bool>::is_always_lock_free && std::atomic<int>::is_always_lock_free,
              "signal handlers may only touch lock-free atomics");
extern "C" void request_stop(int signal) {
  stop_signal.store(signal);
  stop_requested.store(true);
}

// Installs the stop handler for SIGINT and SIGTERM for the duration of a run, and restores the
// previous ones.
class StopSignalGuard {
 public:
  StopSignalGuard() {
    struct sigaction action {};
    action.sa_handler = request_stop;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;  // a write in progress completes rather than failing with EINTR
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
      "a checkpoint and stops (exit status 130 or 143).\n"
      "Defaults depend on --data: toys train an MLP on raw 2-D points; mnist uses the paper's MLP\n"
      "(2-D uniform latent, 500-500 softplus, sigmoid) with blur 1; cifar10 a DCGAN generator.\n"
      "The loss flags default as for `sinkhorn divergence` except --blur (toys 0.1, images 1, learned\n"
      "cost 0.05), --p 1 for a learned cost (the paper's |f(x) - f(y)|) and --tolerance 1e-3 (a batch's\n"
      "sampling noise is far larger).");
  parser.option("data", "NAME", "ring8 (default), grid25, swiss_roll, moons, ellipse, mnist, cifar10")
      .option("data-path", "PATH", "mnist: IDX files (or their folder), raw or .gz; cifar10: binary batches or folder")
      .option("split", "NAME", "train (default) or test: which file of the image set to read")
      .integer("heldout", "N", "held-out samples for evaluation (toys: drawn apart; images: the last N; default 1000)", 1, 10000000)
      .option("generator", "NAME", "mlp or dcgan (default: mlp, dcgan for cifar10)")
      .integer("latent-dim", "K", "latent dimension (default 2; cifar10: 100)", 1, 4096)
      .option("latent", "NAME", "uniform on [-1,1]^K (default for images, the paper's) or gaussian (default for toys)")
      .integer("hidden", "H", "MLP hidden width (default 500 for images, 128 for toys)", 1, 65536)
      .option("activation", "NAME", "MLP activation: softplus (default for images, the paper's) or relu (default for toys)")
      .integer("width", "C", "DCGAN generator channels (default 64)", 1, 4096)
      .option("cost", "NAME", "fixed (default: the loss on raw samples) or learned (on critic features, Algorithm 2)")
      .option("critic", "NAME", "learned cost: mlp or dcgan (default: dcgan for images, mlp for toys)")
      .integer("feature-dim", "K", "learned cost: critic feature dimension (default 16)", 1, 4096)
      .integer("critic-width", "C", "learned cost: critic width (default 64)", 1, 4096)
      .integer("critic-steps", "N", "learned cost: critic updates per generator update (default 5)", 1, 1000)
      .option("clip", "C", "learned cost: weight clipping bound of the critic (default 0.01; 0: none)")
      .option("critic-lr", "LR", "learned cost: critic learning rate (default 5e-5)")
      .option("optimizer", "NAME", "adam (default) or rmsprop (default for the learned cost, as in the paper)")
      .option("lr", "LR", "generator learning rate (default 5e-3 for toys, 1e-3 for images; learned cost: 5e-5)")
      .option("lr-schedule", "NAME", "constant (default for images) or cosine (to 5% of --lr; default for toys)")
      .integer("batch-size", "N", "samples per batch (default 200)", 2, 1000000)
      .integer("steps", "N", "generator updates (default 2000; with --resume: the new total)", 1, kMaxSteps)
      .integer("seed", "S", "seeds initialisation and every batch (default 0)", 0, kMaxSeed)
      .integer("eval-every", "N", "evaluate the held-out divergence every N steps (default 100)", 1, kMaxSteps)
      .integer("eval-samples", "N", "generated samples per evaluation (default 1000)", 2, 1000000)
      .option("eval-blur", "B", "blur of the evaluation divergence (default 0.05 for toys, 1 for images)")
      .integer("sample-every", "N", "write pictures every N steps (default 500; 0: only at the end)", 0, kMaxSteps)
      .integer("checkpoint-every", "N", "write checkpoint.pt every N steps (default 500)", 1, kMaxSteps)
      .integer("log-every", "N", "append to metrics.csv every N steps (default 10)", 1, kMaxSteps)
      .option("out", "DIR", "the run folder (default runs/<data>)")
      .integer("threads", "N", "CPU threads (default: every core)", 0, kMaxThreads)
      .flag("resume", "continue the run in --out from its checkpoint, with its settings (--steps and --lr may change)")
      .flag("overwrite", "start again in an --out folder that already holds a run");
  add_loss_options(parser);
  return parser;
}

gen::TrainConfig config_from(const ParsedArguments& args) {
  gen::TrainConfig c;
  c.data.name = args.value("data").value_or("ring8");
  const bool toy = gen::is_toy(c.data.name);
  const bool cifar = c.data.name == "cifar10";
  c.data.path = args.value("data-path").value_or("");
  c.data.split = args.value("split").value_or("train");
  c.data.heldout = args.integer("heldout").value_or(1000);
  c.cost = args.value("cost").value_or("fixed");
  const bool learned = c.cost == "learned";

  c.generator.architecture = args.value("generator").value_or(cifar ? "dcgan" : "mlp");
  c.generator.latent_dim = args.integer("latent-dim").value_or(cifar ? 100 : 2);
  c.generator.latent = args.value("latent").value_or(toy ? "gaussian" : "uniform");
  c.generator.hidden = args.integer("hidden").value_or(toy ? 128 : 500);
  c.generator.activation = args.value("activation").value_or(toy ? "relu" : "softplus");
  c.generator.width = args.integer("width").value_or(64);

  SinkhornOptions loss;
  // Toys: blur 0.1, twice the modes' std. Images: eps = 1 on pixels in [0, 1], the paper's MNIST
  // setting. A batch's sampling noise dwarfs a 1e-3 marginal error: no need to solve tighter.
  loss.blur = toy ? 0.1 : learned ? 0.05 : 1.0;
  if (learned) loss.p = 1;  // the paper's learned cost c_phi(x, y) = |f_phi(x) - f_phi(y)|
  loss.tolerance = 1e-3;
  c.loss = loss_options_from(args, loss);

  c.critic.architecture = args.value("critic").value_or(toy ? "mlp" : "dcgan");
  c.critic.feature_dim = args.integer("feature-dim").value_or(16);
  c.critic.width = args.integer("critic-width").value_or(64);
  c.critic_steps = args.integer("critic-steps").value_or(5);
  c.clip = args.number("clip").value_or(0.01);
  c.critic_learning_rate = args.number("critic-lr").value_or(5e-5);
  // The paper's Algorithm 2 settings (after MMD GAN): RMSprop, 5e-5, for both players.
  c.optimizer = args.value("optimizer").value_or(learned ? "rmsprop" : "adam");
  c.learning_rate = args.number("lr").value_or(learned ? 5e-5 : toy ? 5e-3 : 1e-3);
  c.schedule = args.value("lr-schedule").value_or(toy && !learned ? "cosine" : "constant");
  c.batch_size = args.integer("batch-size").value_or(200);
  c.steps = args.integer("steps").value_or(2000);
  const long long seed = args.integer("seed").value_or(0);
  c.seed = static_cast<uint64_t>(seed);
  c.eval_every = args.integer("eval-every").value_or(100);
  c.eval_samples = args.integer("eval-samples").value_or(1000);
  c.eval_blur = args.number("eval-blur").value_or(toy ? 0.05 : 1.0);
  c.sample_every = args.integer("sample-every").value_or(500);
  c.checkpoint_every = args.integer("checkpoint-every").value_or(500);
  c.log_every = args.integer("log-every").value_or(10);
  c.out_dir = args.value("out").value_or("runs/" + c.data.name);
  return c;
}

}  // namespace

int train_command(const std::vector<std::string>& arguments, std::ostream& out, std::ostream& err) {
  const ArgumentParser parser = train_parser();
  const std::optional<ParsedArguments> parsed = parse_command(parser, arguments, out);
  if (!parsed) return 0;  // --help
  const ParsedArguments& args = *parsed;
  // From here on a stop signal is a request: a run that is starting stops at its first step boundary,
  // after a checkpoint, instead of dying half way through writing its folder.
  stop_requested.store(false);
  stop_signal.store(0);
  StopSignalGuard guard;
  std::optional<gen::Trainer> trainer;
  if (args.flag("resume")) {
    SINKHORN_CHECK(!args.flag("overwrite"), "--resume and --overwrite exclude each other");
    SINKHORN_CHECK(args.value("out").has_value(), "--resume needs --out, the run folder to continue");
    // A resumed run keeps its saved settings: a flag that would change them silently is refused.
    for (const std::string& given : args.given_options()) {
      const bool allowed = given == "out" || given == "steps" || given == "lr" || given == "threads";
      SINKHORN_CHECK(allowed, "--" << given << " cannot change when resuming (the run keeps the settings "
                                   << "in its checkpoint; only --steps and --lr may change)");
    }
    gen::ResumeOverrides overrides;
    overrides.steps = args.integer("steps");
    overrides.learning_rate = args.number("lr");
    trainer.emplace(gen::Trainer::resume(*args.value("out"), overrides));
    for (const std::string& repair : trainer->repairs()) err << "sinkhorn train: repaired: " << repair << "\n";
    out << "resuming " << trainer->config().out_dir << " at step " << trainer->step() << " of "
        << trainer->config().steps << "\n";
  } else {
    trainer.emplace(gen::Trainer::start(config_from(args), args.flag("overwrite")));
    const gen::TrainConfig& c = trainer->config();
    out << "training a " << c.generator.architecture << " generator on " << c.data.name << " with "
        << to_string(c.loss.loss) << " (p " << c.loss.p << ", blur " << c.loss.blur << ", " << c.cost
        << " cost) for " << c.steps << " steps into " << c.out_dir << "\n";
  }
  out << std::flush;

  const bool terminal = &err == &std::cerr && ::isatty(STDERR_FILENO);
  ProgressReporter progress(err, terminal, trainer->step(), trainer->config().steps);
  const gen::TrainOutcome outcome = trainer->run(
      [&](const gen::StepReport& r) { progress.update(r.step, r.loss, r.critic_loss, r.eval_divergence); },
      &stop_requested);
  progress.finish();
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
