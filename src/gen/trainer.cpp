#include "gen/trainer.h"

#include <torch/nn.h>
#include <torch/optim.h>
#include <c10/core/impl/DeviceGuardImplInterface.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <optional>
#include <utility>
#include <cmath>
#include <filesystem>
#include <iomanip>
#include <sstream>

#include "gen/checkpoint.h"
#include "gen/critic_step.h"
#include "gen/data_parallel.h"
#include "gen/data/toy2d.h"
#include "gen/metrics_log.h"
#include "gen/optimizers.h"
#include "gen/models/networks.h"
#include "gen/sample_pictures.h"
#include "gen/seeds.h"
#include "io/atomic_file.h"
#include "io/file_bytes.h"
#include "platform/devices.h"
#include "api/sharded_divergence.h"
#include "dist/group.h"
#include "sinkhorn/divergence.h"
#include "util/check.h"

namespace sinkhorn::gen {
namespace {

// Adds the wall seconds of its scope to a StepTimings field. Host time: on a GPU a phase's kernels
// are counted where the host waits for them, unless `wait_for` names the device, which the scope
// then waits for at its start (the work launched before it is not its own) and at its end
// (Trainer::time_phases_on_device).
class PhaseClock {
 public:
  PhaseClock(double& seconds, std::optional<at::Device> wait_for) : seconds_(seconds), wait_for_(wait_for) {
    wait();
    start_ = std::chrono::steady_clock::now();
  }
  PhaseClock(const PhaseClock&) = delete;
  PhaseClock& operator=(const PhaseClock&) = delete;
  ~PhaseClock() {
    try {
      wait();
    } catch (...) {
      // A device error here resurfaces at the next operation on the device, which reports it;
      // a destructor must not throw.
    }
    seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }

 private:
  void wait() const {
    if (!wait_for_) return;
    const c10::impl::DeviceGuardImplInterface* device = c10::impl::getDeviceGuardImpl(wait_for_->type());
    device->synchronizeDevice(wait_for_->has_index() ? wait_for_->index() : device->getDevice().index());
  }

  double& seconds_;
  const std::optional<at::Device> wait_for_;
  std::chrono::steady_clock::time_point start_;
};


constexpr int64_t kLatticeRows = 15;  // the paper's latent-manifold figure

std::string step_tag(int64_t step) {
  std::ostringstream tag;
  tag << std::setw(6) << std::setfill('0') << step;
  return tag.str();
}

// The generator and critic of a configuration, initialised from its seed.
struct Networks {
  Generator generator{nullptr};
  Critic critic{nullptr};
};

Networks build_networks(const TrainConfig& config) {
  Networks networks;
  construct_seeded(stream_seed(config.seed, kInitialisationStream), [&] {
    networks.generator = Generator(config.generator);
    if (config.cost == CostKind::learned) networks.critic = Critic(config.critic);
  });
  return networks;
}

// `error` with `note` after its problem, keeping the argument it names.
Error with_note(const Error& error, const std::string& note) {
  const std::string problem = error.problem() + "; " + note;
  return error.argument().empty() ? Error(problem) : Error(error.argument(), problem);
}

// The device of config.device (validate() checked its form), refused naming "device" when this
// LibTorch or machine has no such GPU.
at::Device device_of(const TrainConfig& config) {
  if (config.device.is_cpu()) return config.device;
  const std::string problem = platform::device_problem(config.device);
  SINKHORN_CHECK_ARG(problem.empty(), "device", "'" << config.device.str() << "': " << problem);
  return config.device;
}

}  // namespace

struct Trainer::State {
  TrainConfig config;
  std::unique_ptr<TrainingData> data;
  Networks networks;
  std::unique_ptr<torch::optim::Optimizer> generator_optimizer, critic_optimizer;
  SinkhornOptions evaluation_options;
  at::Device device{at::kCPU};
  at::Tensor heldout;  // the data's held-out samples, on `device`
  int64_t step = 0;
  double seconds = 0;
  std::optional<RunFolder> folder;         // claimed once every check passed
  bool replaces_old_run = false;           // a new run staged beside an old one
  bool files_removed = false;              // a run that wrote no checkpoint gave its files up
  std::optional<int64_t> checkpoint_step;  // this run's last good checkpoint in the folder
  std::vector<std::string> repairs;
  std::vector<std::string> warnings;       // not yet handed to a StepReport
  std::vector<std::string> notes;          // likewise
  // Solves of this process since it started or resumed, and those that did not converge.
  int64_t solves = 0, unconverged_solves = 0;
  double largest_unconverged_error = 0;
  DataParallel ranks{nullptr, at::kCPU};   // the ranks training together (torchrun), or one process
  StepTimings timings;                     // where this process's steps spent their time
  std::optional<at::Device> phase_waits_for;  // the device each phase waits for (time_phases_on_device)
  bool updating_critic = false;            // in a step's critic updates (timings.critic counts them whole)

  bool writes_files() const { return ranks.writes_files(); }

  // `saved`: the checkpoint the settings come from (resume), whose name their errors then carry.
  explicit State(TrainConfig c, const Checkpoint* saved = nullptr) : config(std::move(c)) {
    if (saved) saved->with_saved_settings([&] { build(); });
    else build();
  }

  void build() {
    data = make_training_data(config.data);
    config.generator.sample_shape = data->sample_shape();
    config.critic.sample_shape = data->sample_shape();
    validate(config);
    device = device_of(config);
    networks = build_networks(config);
    generator_optimizer = make_optimizer(config.optimizer, networks.generator->parameters(), config.learning_rate);
    if (networks.critic) {
      critic_optimizer = make_optimizer(config.optimizer, networks.critic->parameters(), config.critic_learning_rate);
    }
    evaluation_options.blur = config.eval_blur;
  }

  // Networks are built (from the seed, on the CPU: the same weights on any device) and checkpoints
  // read on the CPU; this moves them, with their optimisers' state, to the run's device. Module::to
  // keeps each parameter's identity (set_data), which the optimisers' state is keyed by.
  void move_to_device() {
    ranks.set_device(device);
    networks.generator->to(device);
    move_state(*generator_optimizer, device);
    if (networks.critic) {
      networks.critic->to(device);
      move_state(*critic_optimizer, device);
    }
    heldout = data->heldout().to(device);
    data->place_on(draw_device());
  }

  // Where a step's latents and batches are drawn (TrainConfig::draw_on).
  at::Device draw_device() const { return config.draw_on == DrawOn::device ? device : at::Device(at::kCPU); }

  std::string path(const std::string& name) const { return folder->file(name); }

  // What a run that ends early leaves to continue from, for every message that ends it.
  std::string what_is_kept() const {
    if (!folder) return "rank 0 keeps the run folder " + config.out_dir;
    const std::string& out = folder->path();
    if (checkpoint_step) {
      const std::string step_text = "the last good checkpoint (step " + std::to_string(*checkpoint_step) + ")";
      if (folder->pending_commit()) {
        return step_text + " waits in " + out + "/" + kCommittingFolder + "; the next start or resume of " + out +
               " moves it in";
      }
      return step_text + " is kept in " + out + "/" + kCheckpointFile;
    }
    if (replaces_old_run) return "no checkpoint of this run was committed; the previous run in " + out + " is kept";
    if (files_removed) return "no checkpoint was written; the run's files were removed, leaving " + out + " as it was";
    return "no checkpoint was written yet";
  }

  // A run that wrote no checkpoint gives up its files (a staging folder, or those it wrote into a
  // folder that was empty): the folder is as the run found it, and starting again needs no
  // --overwrite. Best effort: a failure here must not hide the error that ended the run.
  void give_up_files() {
    if (checkpoint_step || !folder) return;
    try {
      folder->abandon();
      files_removed = true;
    } catch (const Error& error) {
      warnings.push_back(std::string("the run's files could not all be removed: ") + error.what());
    }
  }

  // How the ranks solve the loss (gen/data_parallel.h), decided at the first call and said once.
  DataParallelSolve plan() {
    std::string decision;
    const DataParallelSolve solve = ranks.plan(config.batch_size, config.batch_size, config.data_parallel_solve, &decision);
    if (!decision.empty()) notes.push_back("data-parallel solve, " + decision);
    return solve;
  }

  // The loss between two batches: on raw samples (fixed cost) or on critic features (learned cost).
  // Under torchrun each rank holds its rows of the generated batch and the whole real batch (every
  // rank draws it). Either the generated rows are gathered once and every rank solves the whole
  // problem (no collective inside the solve), or the solve is sharded (gen/data_parallel.h
  // decides, once per run). Either way the value is the whole batch's and each rank's gradient
  // reaches its own rows. The critic's features of the real batch are computed on each rank's
  // share and gathered too, so that its parameters' gradients add up over the ranks once.
  // `non_finite_samples`: where given and every generated row is gathered here (a fixed cost), set
  // when one is not finite, and the loss is not computed.
  at::Tensor loss(const at::Tensor& generated, const at::Tensor& real, bool* non_finite_samples = nullptr) {
    const auto features = [&](const at::Tensor& samples) {
      return networks.critic ? networks.critic->forward(samples) : samples.flatten(1);
    };
    std::shared_ptr<const dist::Group> group = ranks.shared_group();
    const DataParallelSolve solve = plan();
    const bool gathered = solve != DataParallelSolve::sharded;
    at::Tensor x = features(generated), y;
    if (!ranks.distributed() || (gathered && !networks.critic)) {
      y = features(real);
    } else {
      y = features(ranks.share(real));
      if (gathered) y = ranks.gather(y, config.batch_size);
    }
    // Inside a critic update its own clock counts the gathers and the solve.
    double counted_by_the_critic = 0;
    if (gathered) {
      const PhaseClock clock(updating_critic ? counted_by_the_critic : timings.gather, phase_waits_for);
      x = ranks.gather(x, config.batch_size);
    }
    if (non_finite_samples && !networks.critic && !all_finite(x)) {
      *non_finite_samples = true;
      return {};
    }
    const PhaseClock clock(updating_critic ? counted_by_the_critic : timings.solve, phase_waits_for);
    DivergenceResult result;
    if (ranks.distributed() && solve == DataParallelSolve::split) {
      const std::vector<int64_t> blocks = dist::even_blocks(config.batch_size, group->size());
      result = api::divergence_split({}, x, {}, y, config.loss, api::ProblemSplit{group, blocks, blocks});
    } else {
      result = api::divergence_over({}, x, {}, y, config.loss, gathered ? nullptr : group);
    }
    note_convergence(result.diagnostics);
    return result.value;
  }

  // A solve that stopped at max_iterations above its tolerance says so: the first one at once (a
  // warning with its step), the count and the largest error at the end of the run. The paper's
  // fixed-L mode runs the sweeps it was asked for and says nothing.
  void note_convergence(const Diagnostics& diagnostics) {
    ++solves;
    if (diagnostics.converged || config.loss.iterations) return;
    largest_unconverged_error = std::max(largest_unconverged_error, diagnostics.marginal_error);
    if (unconverged_solves++ > 0) return;
    std::ostringstream message;
    message << "step " << step + 1 << ": a solve stopped after " << diagnostics.iterations
            << " sweeps with marginal error " << diagnostics.marginal_error << " > tolerance " << diagnostics.tolerance
            << " (its loss and gradient are off by about that fraction of eps); raise --max-iterations or --blur. "
               "Later ones are counted and reported at the end of the run";
    warnings.push_back(message.str());
  }

  // The end of the run's count of unconverged solves, when there were any.
  void report_unconverged_solves() {
    if (unconverged_solves == 0) return;
    std::ostringstream message;
    message << unconverged_solves << " of " << solves << " solves of this run stopped at max_iterations above their "
            << "tolerance (largest marginal error " << largest_unconverged_error << ")";
    warnings.push_back(message.str());
  }

  void save_checkpoint() {
    SINKHORN_INTERNAL_CHECK(all_finite(*networks.generator), "a non-finite generator reached a checkpoint at step " << step);
    if (!writes_files()) {
      checkpoint_step = step;  // rank 0 wrote it
      return;
    }
    CheckpointContents contents;
    contents.config = &config;
    contents.step = step;
    contents.seconds = seconds;
    contents.generator = networks.generator.get();
    contents.generator_optimizer = generator_optimizer.get();
    if (networks.critic) {
      contents.critic = networks.critic.get();
      contents.critic_optimizer = critic_optimizer.get();
    }
    write_checkpoint(path(kCheckpointFile), contents);
    // A new run over an old one replaces it now, at its first checkpoint. Past the commit point
    // (staging() false) this checkpoint is the run's, even if moving files in fails.
    std::vector<std::string> commit_warnings;
    try {
      commit_warnings = folder->commit();
    } catch (const Error&) {
      if (!folder->staging()) checkpoint_step = step;
      throw;
    }
    checkpoint_step = step;
    warnings.insert(warnings.end(), commit_warnings.begin(), commit_warnings.end());
  }

  void load_checkpoint(const Checkpoint& checkpoint) {
    step = checkpoint.step();
    seconds = checkpoint.seconds();
    checkpoint.load_module("generator", *networks.generator);
    checkpoint.load_optimizer("generator_optimizer", *generator_optimizer);
    if (networks.critic) {
      checkpoint.load_module("critic", *networks.critic);
      checkpoint.load_optimizer("critic_optimizer", *critic_optimizer);
    }
  }

  // A stop request: a checkpoint of the last finished step, or, for a new run over an old one
  // that has not finished a step, nothing (an untrained run does not replace the old one).
  TrainOutcome stop_now() {
    if (!writes_files()) return {TrainStatus::interrupted, step, what_is_kept(), std::nullopt, take_warnings()};
    if (step == 0 && folder->staging()) {
      folder->abandon();
      return {TrainStatus::interrupted, step, "the previous run in " + folder->path() + " is kept", std::nullopt, take_warnings()};
    }
    save_checkpoint();
    return {TrainStatus::interrupted, step, "checkpoint saved in " + folder->path(), std::nullopt, take_warnings()};
  }

  std::vector<std::string> take_warnings() { return std::exchange(warnings, {}); }

  // Step 0 (the initial generator) has an evaluation but no loss: its loss column stays empty.
  void append_metrics(const StepReport& report, const std::optional<Evaluation>& evaluation) {
    if (!writes_files()) return;
    MetricsRow row;
    row.step = report.step;
    if (report.step > 0) row.loss = report.loss;
    row.critic_loss = report.critic_loss;
    row.seconds = report.seconds;
    if (evaluation) {
      row.eval_divergence = evaluation->divergence;
      row.modes_covered = evaluation->modes_covered;
      row.high_quality_fraction = evaluation->high_quality_fraction;
    }
    append_metrics_row(path("metrics.csv"), row);
  }

  // The generator's output for `latent` in evaluation mode (batch norm on its running statistics,
  // which this leaves untouched), without autograd.
  at::Tensor generate(const at::Tensor& latent) {
    torch::NoGradGuard no_grad;
    networks.generator->eval();
    const at::Tensor samples = networks.generator->forward(latent);
    networks.generator->train();
    return samples;
  }

  // Always from the same latent draws, so that evaluations differ only by the generator.
  at::Tensor evaluation_samples() {
    at::Generator generator = generator_for(config.seed, kEvaluationStream);
    return generate(networks.generator->sample_latent(config.eval_samples, generator).to(device));
  }

  Evaluation evaluate(const at::Tensor& samples) {
    Evaluation evaluation;
    if (!all_finite(samples)) {
      evaluation.divergence = std::nan("");
      return evaluation;
    }
    torch::NoGradGuard no_grad;
    evaluation.divergence =
        divergence(samples.flatten(1), heldout.flatten(1), evaluation_options).item<double>();
    const ToyModes modes = toy_modes(config.data.name);
    if (modes.centres.defined()) {
      const ModeCoverage coverage = mode_coverage(modes, samples.to(at::kCPU));
      evaluation.modes_covered = coverage.covered;
      evaluation.modes = coverage.modes;
      evaluation.high_quality_fraction = coverage.high_quality_fraction;
    }
    return evaluation;
  }

  void write_pictures(const std::string& tag, const at::Tensor& samples) {
    if (!writes_files()) return;
    if (data->is_image()) {
      write_samples_picture(path("samples_" + tag + ".png"), samples.narrow(0, 0, std::min<int64_t>(64, samples.size(0))));
      if (config.generator.latent_dim == 2) {
        const at::Tensor lattice = generate(networks.generator->latent_lattice(kLatticeRows).to(device));
        write_lattice_picture(path("latent_grid_" + tag + ".png"), lattice, kLatticeRows);
      }
    } else {
      write_samples_picture(path("scatter_" + tag + ".png"), samples, data->heldout());
    }
  }

  // One update of the critic on a fresh pair of batches (gen/critic_step.h).
  double critic_update(at::Generator& generator) {
    return gen::critic_update(networks.critic, *critic_optimizer, ranks, config.clip, [&] {
      const int64_t batch = config.batch_size;
      at::Tensor generated;
      {
        torch::NoGradGuard no_grad;
        generated =
            networks.generator->forward(ranks.share(networks.generator->sample_latent(batch, generator)).to(device));
      }
      return loss(generated, data->sample(batch, generator).to(device));
    });
  }

  TrainOutcome run(const std::function<void(const StepReport&)>& on_step, const std::atomic<bool>* stop);
  TrainOutcome stopped_by_non_finite(int64_t failed_step, const std::string& what);
};

Trainer::Trainer(std::unique_ptr<State> state) : state_(std::move(state)) {}
Trainer::Trainer(Trainer&&) noexcept = default;
Trainer& Trainer::operator=(Trainer&&) noexcept = default;
Trainer::~Trainer() = default;

Trainer Trainer::start(TrainConfig config, bool overwrite, const dist::Group* group) {
  // The data path is saved in the checkpoint: make it absolute so --resume works from any folder.
  if (!config.data.path.empty()) config.data.path = std::filesystem::absolute(config.data.path).lexically_normal().string();
  // Settings, data and networks first: a bad setting leaves the folder untouched.
  auto state = std::make_unique<State>(std::move(config));
  state->ranks = DataParallel(group, state->device);
  state->move_to_device();
  if (!state->writes_files()) {
    state->ranks.agree_on_setup(false);
    return Trainer(std::move(state));
  }
  try {
    start_folder(*state, overwrite);
  } catch (...) {
    state->ranks.agree_on_setup(true);
    throw;
  }
  state->ranks.agree_on_setup(false);
  return Trainer(std::move(state));
}

void Trainer::start_folder(State& started, bool overwrite) {
  State* state = &started;
  state->folder.emplace(RunFolder::for_new_run(state->config.out_dir, overwrite));
  state->replaces_old_run = state->folder->staging();
  state->repairs = state->folder->repairs();
  try {
    io::write_file_atomically(state->path("config.json"), to_json(state->config), "out_dir");
    create_metrics_log(state->path("metrics.csv"));
    // The untrained generator's score: the reference every later evaluation is read against.
    state->append_metrics(StepReport{}, state->evaluate(state->evaluation_samples()));
  } catch (const Error&) {
    try {
      state->folder->abandon();  // a folder that was empty becomes empty again
    } catch (const Error&) {
      // the first error is the one to report
    }
    throw;
  }
}

namespace {

// What a resume changes in the saved settings (their checks: validate(), after).
void apply_overrides(const ResumeOverrides& overrides, TrainConfig& config) {
  if (overrides.steps) config.steps = *overrides.steps;
  if (overrides.learning_rate) config.learning_rate = *overrides.learning_rate;
  if (overrides.device) config.device = *overrides.device;
  for (const auto& [key, value] : overrides.settings) {
    const TrainOptionSpec* spec = find_train_option(key);
    SINKHORN_CHECK_ARG(spec != nullptr && spec->may_change_on_resume, key,
                       "cannot change when resuming (the run keeps the settings in its checkpoint)");
    check_train_value(*spec, value);
    spec->set(config, value);
  }
}

}  // namespace

Trainer Trainer::resume(const std::string& out_dir, const ResumeOverrides& overrides, const dist::Group* group) {
  if (group && group->rank() != 0) {
    // Rank 0 resumes the folder first (it may move a checkpoint a killed run left committing);
    // then this rank reads the same checkpoint, without the folder's lock, and only computes.
    const DataParallel setup(group, at::kCPU);
    setup.agree_on_setup(false);
    const Checkpoint checkpoint = Checkpoint::read(out_dir + "/" + kCheckpointFile, "out_dir");
    TrainConfig config = checkpoint.config();
    config.out_dir = out_dir;
    apply_overrides(overrides, config);
    auto state = std::make_unique<State>(std::move(config), &checkpoint);
    state->ranks = DataParallel(group, state->device);
    state->load_checkpoint(checkpoint);
    state->move_to_device();
    state->checkpoint_step = state->step;
    return Trainer(std::move(state));
  }
  const DataParallel setup(group, at::kCPU);
  try {
    Trainer trainer = resume_folder(out_dir, overrides);
    trainer.state_->ranks = DataParallel(group, trainer.state_->device);
    setup.agree_on_setup(false);
    return trainer;
  } catch (...) {
    setup.agree_on_setup(true);
    throw;
  }
}

Trainer Trainer::resume_folder(const std::string& out_dir, const ResumeOverrides& overrides) {
  // Everything is checked before anything is written: a refused resume leaves the folder as it was.
  RunFolder folder = RunFolder::for_resume(out_dir);
  const std::string file = out_dir + "/" + kCheckpointFile;
  SINKHORN_CHECK_ARG(io::path_exists(file), "out_dir", "'" << out_dir << "' holds no " << kCheckpointFile << " to resume from");
  const Checkpoint checkpoint = Checkpoint::read(file, "out_dir");
  TrainConfig config = checkpoint.config();
  config.out_dir = out_dir;  // the folder may have been moved since
  // The overrides are the user's: checked here naming them, so that the errors of what follows
  // are the saved settings' alone.
  if (overrides.steps) {
    SINKHORN_CHECK_ARG(*overrides.steps >= checkpoint.step(), "steps",
                       *overrides.steps << " is below the step of the checkpoint in '" << out_dir << "' ("
                                        << checkpoint.step() << "): a run resumes from its checkpoint, so --steps must "
                                        << "be at least " << checkpoint.step());
  }
  apply_overrides(overrides, config);
  validate(config);  // names learning_rate or steps: the saved settings passed Checkpoint::read
  auto state = std::make_unique<State>(std::move(config), &checkpoint);
  state->load_checkpoint(checkpoint);
  state->move_to_device();
  const MetricsResume metrics = plan_metrics_resume(out_dir + "/metrics.csv", state->step);

  state->folder.emplace(std::move(folder));
  state->repairs = state->folder->repairs();
  state->folder->remove_leftovers();
  io::write_file_atomically(state->path("config.json"), to_json(state->config), "out_dir");
  io::write_file_atomically(state->path("metrics.csv"), metrics.text, "out_dir");
  state->repairs.insert(state->repairs.end(), metrics.repairs.begin(), metrics.repairs.end());
  state->checkpoint_step = state->step;
  return Trainer(std::move(state));
}

TrainOutcome Trainer::run(const std::function<void(const StepReport&)>& on_step, const std::atomic<bool>* stop) {
  State& s = *state_;
  try {
    return s.run(on_step, stop);
  } catch (const Error& error) {
    // A write failed (a full disk) or a check did: say what is left to resume from.
    s.give_up_files();
    throw with_note(error, s.what_is_kept());
  }
}

TrainOutcome Trainer::State::stopped_by_non_finite(int64_t failed_step, const std::string& what) {
  give_up_files();
  const std::string advice = checkpoint_step ? "continue from it with --resume and a smaller --lr"
                                             : "start again with a smaller --lr";
  return {TrainStatus::non_finite, failed_step - 1,
          "step " + std::to_string(failed_step) + ": " + what + "; training stopped. " + what_is_kept() + " (" + advice + ")",
          std::nullopt, take_warnings()};
}

TrainOutcome Trainer::State::run(const std::function<void(const StepReport&)>& on_step, const std::atomic<bool>* stop) {
  std::optional<Evaluation> last_evaluation;
  // In a group the ranks agree on a stop once per step, at its start; in one process a stop
  // request is also taken between critic updates.
  const auto stop_requested = [&] { return !ranks.distributed() && stop && stop->load(); };

  // In a group the stop request rides on the previous step's gradient all-reduce (no collective of
  // its own): the ranks stop together at the start of the step after the one that saw it.
  bool stop_agreed = false;
  while (step < config.steps) {
    if (ranks.distributed() ? stop_agreed : (stop && stop->load())) return stop_now();
    const auto started = std::chrono::steady_clock::now();
    const int64_t next = step + 1;
    at::Generator generator = generator_for(config.seed, static_cast<uint64_t>(next), draw_device());
    StepReport report;
    report.step = next;
    report.steps = config.steps;
    if (networks.critic) {
      const PhaseClock clock(timings.critic, phase_waits_for);
      struct Updating {
        bool& flag;
        explicit Updating(bool& f) : flag(f) { flag = true; }
        ~Updating() { flag = false; }
      } updating(updating_critic);
      // Only a run that can be stopped between critic updates pays for the copy (in a group the
      // ranks stop at step boundaries only).
      std::optional<CriticStepSnapshot> before;
      if (stop && !ranks.distributed()) before.emplace(*networks.critic, *critic_optimizer, *networks.generator);
      double critic_value = 0;
      for (int64_t k = 0; k < config.critic_steps; ++k) {
        if (k > 0 && stop_requested()) {
          before->restore();
          return stop_now();
        }
        critic_value = critic_update(generator);
        if (!std::isfinite(critic_value)) return stopped_by_non_finite(next, "the critic's loss is not finite");
      }
      if (stop_requested()) {
        before->restore();
        return stop_now();
      }
      report.critic_loss = critic_value;
    }
    // Drawn where draw_device() says (by default the CPU, then moved: the same latents and batches
    // on any device). Drawn whole (the same global batch on every rank), generated in shares.
    at::Tensor generated;
    {
      const PhaseClock clock(timings.generate, phase_waits_for);
      generated = networks.generator->forward(
          ranks.share(networks.generator->sample_latent(config.batch_size, generator)).to(device));
    }
    // Non-finite samples stop every rank: where the loss gathers the generated rows themselves,
    // each rank sees all of them there; otherwise the ranks agree here.
    bool non_finite_samples = false;
    const bool sees_every_row = !ranks.distributed() || (!networks.critic && plan() != DataParallelSolve::sharded);
    if (!sees_every_row && ranks.on_any_rank(!all_finite(generated))) non_finite_samples = true;
    at::Tensor value;
    if (!non_finite_samples) {
      value = loss(generated, data->sample(config.batch_size, generator).to(device), &non_finite_samples);
    }
    if (non_finite_samples) return stopped_by_non_finite(next, "the generator produced non-finite samples");
    report.loss = value.item<double>();
    if (!std::isfinite(report.loss)) return stopped_by_non_finite(next, "the loss is " + std::to_string(report.loss));
    set_learning_rate(*generator_optimizer, learning_rate_at(config, next));
    generator_optimizer->zero_grad();
    {
      const PhaseClock clock(timings.backward, phase_waits_for);
      value.backward();
    }
    {
      const PhaseClock clock(timings.reduce, phase_waits_for);
      stop_agreed = ranks.sum_gradients(*networks.generator, stop && stop->load());
    }
    for (const auto& parameter : networks.generator->parameters()) {
      if (parameter.grad().defined() && !all_finite(parameter.grad())) {
        return stopped_by_non_finite(next, "a gradient of the generator is not finite");
      }
    }
    {
      const PhaseClock clock(timings.update, phase_waits_for);
      generator_optimizer->step();
    }
    ++timings.steps;
    step = next;
    const double step_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    timings.step += step_seconds;
    seconds += step_seconds;
    report.seconds = seconds;

    const bool last = step == config.steps;
    // The updated generator's evaluation samples, drawn at most once per step for the
    // evaluation, the pictures and the checkpoint probe.
    std::optional<at::Tensor> drawn;
    const auto samples = [&]() -> const at::Tensor& {
      if (!drawn) drawn = evaluation_samples();
      return *drawn;
    };
    std::optional<Evaluation> evaluation;
    if (step % config.eval_every == 0 || last) {
      evaluation = last_evaluation = evaluate(samples());
      report.eval_divergence = evaluation->divergence;
    }
    if (step % config.log_every == 0 || evaluation) append_metrics(report, evaluation);
    if (config.sample_every > 0 && step % config.sample_every == 0) write_pictures(step_tag(step), samples());
    if (step % config.checkpoint_every == 0 || last) {
      // A finite loss does not prove the update left a usable generator: probe it before it
      // replaces the last good checkpoint.
      if (!all_finite(samples()) || !all_finite(*networks.generator)) {
        return stopped_by_non_finite(step, "the updated generator produces non-finite samples");
      }
      save_checkpoint();
    }
    if (last) write_pictures("final", samples());
    report.warnings = take_warnings();
    report.notes = std::exchange(notes, {});
    if (on_step) on_step(report);
  }
  report_unconverged_solves();
  return {TrainStatus::finished, step, "", last_evaluation, take_warnings()};
}

Evaluation Trainer::evaluate() { return state_->evaluate(state_->evaluation_samples()); }
const TrainConfig& Trainer::config() const { return state_->config; }
const StepTimings& Trainer::timings() const { return state_->timings; }

void Trainer::time_phases_on_device(bool on) {
  state_->phase_waits_for.reset();
  if (on && !state_->device.is_cpu()) state_->phase_waits_for = state_->device;
}
int64_t Trainer::step() const { return state_->step; }
const std::vector<std::string>& Trainer::repairs() const { return state_->repairs; }

std::vector<at::Tensor> Trainer::generator_state() const {
  std::vector<at::Tensor> tensors;
  for (const auto& parameter : state_->networks.generator->parameters()) tensors.push_back(parameter.detach().to(at::kCPU).clone());
  for (const auto& buffer : state_->networks.generator->buffers()) tensors.push_back(buffer.detach().to(at::kCPU).clone());
  return tensors;
}

}  // namespace sinkhorn::gen
