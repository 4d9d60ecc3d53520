#include "gen/trainer.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/nn.h>
#include <torch/optim.h>
#include <torch/serialize.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <sstream>

#include "gen/data/toy2d.h"
#include "gen/models/networks.h"
#include "gen/sample_pictures.h"
#include "io/file_bytes.h"
#include "sinkhorn/divergence.h"
#include "util/check.h"

namespace sinkhorn::gen {
namespace {

constexpr const char* kCheckpointFormat = "sinkhorn-checkpoint-1";
constexpr int64_t kLatticeRows = 15;  // the paper's latent-manifold figure

// SplitMix64: decorrelates (seed, step) pairs so that each step's randomness is a function of the
// step alone. That makes --resume exact without saving any random-number-generator state.
uint64_t mix(uint64_t value) {
  value += 0x9e3779b97f4a7c15ULL;
  value = (value ^ (value >> 30)) * 0xbf58476d1ce4e5b9ULL;
  value = (value ^ (value >> 27)) * 0x94d049bb133111ebULL;
  return value ^ (value >> 31);
}

uint64_t stream_seed(uint64_t seed, uint64_t stream) { return mix(seed ^ mix(stream)); }

at::Generator generator_for(uint64_t seed, uint64_t stream) {
  return at::make_generator<at::CPUGeneratorImpl>(stream_seed(seed, stream));
}

// Stream numbers: steps use 1, 2, ...; these are far from any step count.
constexpr uint64_t kEvaluationStream = ~uint64_t{0};
constexpr uint64_t kInitialisationStream = ~uint64_t{0} - 1;

std::string join(const std::string& folder, const std::string& name) { return folder + "/" + name; }

void make_folder(const std::string& path) {
  std::error_code error;
  std::filesystem::create_directories(path, error);
  SINKHORN_CHECK(!error, "--out: cannot create folder '" << path << "': " << error.message());
}

void write_text_atomically(const std::string& path, const std::string& text) {
  const std::string temporary = path + ".tmp";
  {
    std::ofstream file(temporary, std::ios::binary | std::ios::trunc);
    SINKHORN_CHECK(file && (file << text) && file.flush(), "cannot write '" << temporary << "'");
  }
  SINKHORN_CHECK(std::rename(temporary.c_str(), path.c_str()) == 0,
                 "cannot replace '" << path << "': " << std::strerror(errno));
}

bool all_finite(const at::Tensor& tensor) { return tensor.isfinite().all().item<bool>(); }

std::string step_tag(int64_t step) {
  std::ostringstream tag;
  tag << std::setw(6) << std::setfill('0') << step;
  return tag.str();
}

void set_learning_rate(torch::optim::Optimizer& optimizer, double rate) {
  for (auto& group : optimizer.param_groups()) {
    if (auto* adam = dynamic_cast<torch::optim::AdamOptions*>(&group.options())) adam->lr(rate);
    if (auto* rmsprop = dynamic_cast<torch::optim::RMSpropOptions*>(&group.options())) rmsprop->lr(rate);
  }
}

// The generator's rate at `step` (1-based) of `steps`. The optimiser's saved state carries a rate
// too; setting it every step makes the config (and a resume's new --lr) the one source of truth.
double learning_rate_at(const TrainConfig& config, int64_t step) {
  if (config.schedule == "constant" || config.steps <= 1) return config.learning_rate;
  constexpr double kFinalFraction = 0.05;
  const double progress = static_cast<double>(step - 1) / static_cast<double>(config.steps - 1);
  return config.learning_rate * (kFinalFraction + (1 - kFinalFraction) * 0.5 * (1 + std::cos(M_PI * progress)));
}

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const std::string& kind, std::vector<at::Tensor> parameters,
                                                        double learning_rate) {
  if (kind == "rmsprop") {
    return std::make_unique<torch::optim::RMSprop>(std::move(parameters), torch::optim::RMSpropOptions(learning_rate));
  }
  return std::make_unique<torch::optim::Adam>(std::move(parameters), torch::optim::AdamOptions(learning_rate));
}

// The generator and critic of a configuration, initialised from its seed.
struct Networks {
  Generator generator{nullptr};
  Critic critic{nullptr};
};

Networks build_networks(const TrainConfig& config) {
  // LibTorch initialises modules from its global generator: seed it from the run's seed.
  torch::manual_seed(stream_seed(config.seed, kInitialisationStream));
  Networks networks;
  networks.generator = Generator(config.generator);
  if (config.cost == "learned") networks.critic = Critic(config.critic);
  return networks;
}

torch::serialize::InputArchive open_checkpoint(const std::string& path) {
  torch::serialize::InputArchive archive;
  try {
    archive.load_from(path);
  } catch (const c10::Error& error) {
    SINKHORN_CHECK(false, "cannot read checkpoint '" << path << "': not a sinkhorn checkpoint or corrupt");
  }
  c10::IValue format;
  SINKHORN_CHECK(archive.try_read("format", format) && format.isString() && format.toStringRef() == kCheckpointFormat,
                 "'" << path << "' is not a sinkhorn checkpoint (format " << kCheckpointFormat << ")");
  return archive;
}

TrainConfig saved_config(torch::serialize::InputArchive& archive) {
  c10::IValue text;
  archive.read("config", text);
  return train_config_from_json(text.toStringRef());
}

std::string checkpoint_path_of(const std::string& path) {
  return io::is_directory(path) ? join(path, kCheckpointFile) : path;
}

}  // namespace

struct Trainer::State {
  TrainConfig config;
  std::unique_ptr<TrainingData> data;
  Networks networks;
  std::unique_ptr<torch::optim::Optimizer> generator_optimizer, critic_optimizer;
  SinkhornOptions evaluation_options;
  int64_t step = 0;
  double seconds = 0;

  explicit State(TrainConfig c) : config(std::move(c)) {
    data = make_training_data(config.data);
    config.generator.sample_shape = data->sample_shape();
    config.critic.sample_shape = data->sample_shape();
    validate(config);
    networks = build_networks(config);
    generator_optimizer = make_optimizer(config.optimizer, networks.generator->parameters(), config.learning_rate);
    if (networks.critic) {
      critic_optimizer = make_optimizer(config.optimizer, networks.critic->parameters(), config.critic_learning_rate);
    }
    evaluation_options.blur = config.eval_blur;
  }

  std::string path(const std::string& name) const { return join(config.out_dir, name); }

  // The loss between two batches: on raw samples (fixed cost) or on critic features (learned cost).
  at::Tensor loss(const at::Tensor& generated, const at::Tensor& real) {
    if (networks.critic) {
      return divergence(networks.critic->forward(generated), networks.critic->forward(real), config.loss);
    }
    return divergence(generated.flatten(1), real.flatten(1), config.loss);
  }

  void save_checkpoint() {
    for (const auto& parameter : networks.generator->parameters()) {
      SINKHORN_CHECK(all_finite(parameter), "refusing to checkpoint non-finite generator parameters");
    }
    torch::serialize::OutputArchive archive;
    archive.write("format", c10::IValue(std::string(kCheckpointFormat)));
    archive.write("config", c10::IValue(to_json(config)));
    archive.write("step", c10::IValue(step));
    archive.write("seconds", c10::IValue(seconds));
    torch::serialize::OutputArchive generator_archive, generator_optimizer_archive;
    networks.generator->save(generator_archive);
    generator_optimizer->save(generator_optimizer_archive);
    archive.write("generator", generator_archive);
    archive.write("generator_optimizer", generator_optimizer_archive);
    if (networks.critic) {
      torch::serialize::OutputArchive critic_archive, critic_optimizer_archive;
      networks.critic->save(critic_archive);
      critic_optimizer->save(critic_optimizer_archive);
      archive.write("critic", critic_archive);
      archive.write("critic_optimizer", critic_optimizer_archive);
    }
    // Write beside, then rename: a crash at any moment leaves the previous checkpoint or the new one.
    const std::string final_path = path(kCheckpointFile), temporary = final_path + ".tmp";
    try {
      archive.save_to(temporary);
    } catch (const c10::Error& error) {
      SINKHORN_CHECK(false, "cannot write checkpoint '" << temporary << "'");
    }
    SINKHORN_CHECK(std::rename(temporary.c_str(), final_path.c_str()) == 0,
                   "cannot replace checkpoint '" << final_path << "': " << std::strerror(errno));
  }

  void load_checkpoint(torch::serialize::InputArchive& archive) {
    c10::IValue value;
    archive.read("step", value);
    step = value.toInt();
    archive.read("seconds", value);
    seconds = value.toDouble();
    torch::serialize::InputArchive part;
    archive.read("generator", part);
    networks.generator->load(part);
    archive.read("generator_optimizer", part);
    generator_optimizer->load(part);
    if (networks.critic) {
      archive.read("critic", part);
      networks.critic->load(part);
      archive.read("critic_optimizer", part);
      critic_optimizer->load(part);
    }
  }

  // metrics.csv: one row per logged step. On resume, rows past the checkpoint are dropped so that
  // the file reads as if the run had never stopped.
  static constexpr const char* kMetricsHeader =
      "step,loss,critic_loss,seconds,eval_divergence,modes_covered,high_quality_fraction\n";

  void start_metrics(bool keep_rows_up_to_step) {
    std::string text = kMetricsHeader;
    if (keep_rows_up_to_step) {
      std::ifstream file(path("metrics.csv"));
      std::string line;
      std::getline(file, line);  // header
      while (std::getline(file, line)) {
        if (line.empty()) continue;
        int64_t row_step = 0;
        const auto parsed = std::from_chars(line.data(), line.data() + line.size(), row_step);
        SINKHORN_CHECK(parsed.ec == std::errc() && parsed.ptr != line.data() + line.size() && *parsed.ptr == ',',
                       "--resume: '" << path("metrics.csv") << "' has a malformed row: '" << line << "'");
        if (row_step <= step) text += line + "\n";
      }
    }
    write_text_atomically(path("metrics.csv"), text);
  }

  // Step 0 (the initial generator) has an evaluation but no loss: its loss column stays empty.
  void append_metrics(const StepReport& report, const std::optional<Evaluation>& evaluation) {
    std::ofstream file(path("metrics.csv"), std::ios::app);
    file << std::setprecision(8) << report.step << ',';
    if (report.step > 0) file << report.loss;
    file << ',';
    if (report.critic_loss) file << *report.critic_loss;
    file << ',' << std::setprecision(6) << report.seconds << ',' << std::setprecision(8);
    if (evaluation) {
      file << evaluation->divergence << ',';
      if (evaluation->modes_covered) file << *evaluation->modes_covered;
      file << ',';
      if (evaluation->high_quality_fraction) file << *evaluation->high_quality_fraction;
    } else {
      file << ",,";
    }
    file << '\n';
    SINKHORN_CHECK(file.flush(), "cannot append to '" << path("metrics.csv") << "'");
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
    return generate(networks.generator->sample_latent(config.eval_samples, generator));
  }

  Evaluation evaluate(const at::Tensor& samples) {
    Evaluation evaluation;
    if (!all_finite(samples)) {
      evaluation.divergence = std::nan("");
      return evaluation;
    }
    torch::NoGradGuard no_grad;
    evaluation.divergence =
        divergence(samples.flatten(1), data->heldout().flatten(1), evaluation_options).item<double>();
    const ToyModes modes = toy_modes(config.data.name);
    if (modes.centres.defined()) {
      const ModeCoverage coverage = mode_coverage(modes, samples);
      evaluation.modes_covered = coverage.covered;
      evaluation.modes = coverage.modes;
      evaluation.high_quality_fraction = coverage.high_quality_fraction;
    }
    return evaluation;
  }

  void write_pictures(const std::string& tag, const at::Tensor& samples) {
    if (data->is_image()) {
      write_samples_picture(path("samples_" + tag + ".png"), samples.narrow(0, 0, std::min<int64_t>(64, samples.size(0))));
      if (config.generator.latent_dim == 2) {
        const at::Tensor lattice = generate(networks.generator->latent_lattice(kLatticeRows));
        write_lattice_picture(path("latent_grid_" + tag + ".png"), lattice, kLatticeRows);
      }
    } else {
      write_samples_picture(path("scatter_" + tag + ".png"), samples, data->heldout());
    }
  }

  // One update of the critic: gradient ascent on the loss (descent on its negative), then clipping.
  double critic_update(at::Generator& generator) {
    const int64_t batch = config.batch_size;
    at::Tensor generated;
    {
      torch::NoGradGuard no_grad;
      generated = networks.generator->forward(networks.generator->sample_latent(batch, generator));
    }
    const at::Tensor real = data->sample(batch, generator);
    const at::Tensor value = loss(generated, real);
    if (!all_finite(value)) return std::nan("");
    critic_optimizer->zero_grad();
    (-value).backward();
    critic_optimizer->step();
    if (config.clip > 0) networks.critic->clip_weights(config.clip);
    return value.item<double>();
  }
};

Trainer::Trainer(std::unique_ptr<State> state) : state_(std::move(state)) {}
Trainer::Trainer(Trainer&&) noexcept = default;
Trainer& Trainer::operator=(Trainer&&) noexcept = default;
Trainer::~Trainer() = default;

Trainer Trainer::start(TrainConfig config, bool overwrite) {
  // The data path is saved in the checkpoint: make it absolute so --resume works from any folder.
  if (!config.data.path.empty()) config.data.path = std::filesystem::absolute(config.data.path).lexically_normal().string();
  auto state = std::make_unique<State>(std::move(config));
  make_folder(state->config.out_dir);
  SINKHORN_CHECK(overwrite || !io::path_exists(state->path(kCheckpointFile)),
                 "--out '" << state->config.out_dir << "' already holds a run (checkpoint.pt): pass --resume to "
                           << "continue it or --overwrite to start again");
  std::remove(state->path(kCheckpointFile).c_str());
  write_text_atomically(state->path("config.json"), to_json(state->config));
  state->start_metrics(false);
  // The untrained generator's score: the reference every later evaluation is read against.
  state->append_metrics(StepReport{}, state->evaluate(state->evaluation_samples()));
  return Trainer(std::move(state));
}

Trainer Trainer::resume(const std::string& out_dir, const ResumeOverrides& overrides) {
  const std::string path = join(out_dir, kCheckpointFile);
  SINKHORN_CHECK(io::path_exists(path), "--resume: '" << out_dir << "' holds no checkpoint.pt to resume from");
  torch::serialize::InputArchive archive = open_checkpoint(path);
  TrainConfig config = saved_config(archive);
  config.out_dir = out_dir;  // the folder may have been moved since
  if (overrides.steps) config.steps = *overrides.steps;
  if (overrides.learning_rate) config.learning_rate = *overrides.learning_rate;
  auto state = std::make_unique<State>(std::move(config));
  state->load_checkpoint(archive);

  write_text_atomically(state->path("config.json"), to_json(state->config));
  state->start_metrics(true);
  return Trainer(std::move(state));
}

TrainOutcome Trainer::run(const std::function<void(const StepReport&)>& on_step, const std::atomic<bool>* stop) {
  State& s = *state_;
  const TrainConfig& config = s.config;
  std::optional<Evaluation> last_evaluation;
  auto non_finite = [&](int64_t step, const std::string& what) {
    TrainOutcome outcome{TrainStatus::non_finite, step - 1, "", std::nullopt};
    std::ostringstream message;
    message << "step " << step << ": " << what << "; training stopped. The last good checkpoint ";
    if (io::path_exists(s.path(kCheckpointFile))) message << "is " << s.path(kCheckpointFile);
    else message << "does not exist (no checkpoint was written yet)";
    message << " (continue from it with --resume and a smaller --lr)";
    outcome.message = message.str();
    return outcome;
  };

  while (s.step < config.steps) {
    if (stop && stop->load()) {
      s.save_checkpoint();
      return {TrainStatus::interrupted, s.step, "", std::nullopt};
    }
    const auto started = std::chrono::steady_clock::now();
    const int64_t step = s.step + 1;
    at::Generator generator = generator_for(config.seed, static_cast<uint64_t>(step));
    StepReport report;
    report.step = step;
    report.steps = config.steps;
    if (s.networks.critic) {
      double critic_value = 0;
      for (int64_t k = 0; k < config.critic_steps; ++k) {
        critic_value = s.critic_update(generator);
        if (!std::isfinite(critic_value)) return non_finite(step, "the critic's loss is not finite");
      }
      report.critic_loss = critic_value;
    }
    const at::Tensor generated = s.networks.generator->forward(s.networks.generator->sample_latent(config.batch_size, generator));
    if (!all_finite(generated)) return non_finite(step, "the generator produced non-finite samples");
    const at::Tensor value = s.loss(generated, s.data->sample(config.batch_size, generator));
    report.loss = value.item<double>();
    if (!std::isfinite(report.loss)) return non_finite(step, "the loss is " + std::to_string(report.loss));
    set_learning_rate(*s.generator_optimizer, learning_rate_at(config, step));
    s.generator_optimizer->zero_grad();
    value.backward();
    for (const auto& parameter : s.networks.generator->parameters()) {
      if (parameter.grad().defined() && !all_finite(parameter.grad())) {
        return non_finite(step, "a gradient of the generator is not finite");
      }
    }
    s.generator_optimizer->step();
    s.step = step;
    s.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    report.seconds = s.seconds;

    const bool last = step == config.steps;
    // The updated generator's evaluation samples, drawn at most once per step for the
    // evaluation, the pictures and the checkpoint probe.
    std::optional<at::Tensor> drawn;
    const auto samples = [&]() -> const at::Tensor& {
      if (!drawn) drawn = s.evaluation_samples();
      return *drawn;
    };
    std::optional<Evaluation> evaluation;
    if (step % config.eval_every == 0 || last) {
      evaluation = last_evaluation = s.evaluate(samples());
      report.eval_divergence = evaluation->divergence;
    }
    if (step % config.log_every == 0 || evaluation) s.append_metrics(report, evaluation);
    if (config.sample_every > 0 && step % config.sample_every == 0) s.write_pictures(step_tag(step), samples());
    if (step % config.checkpoint_every == 0 || last) {
      // A finite loss does not prove the update left a usable generator: probe it before it
      // replaces the last good checkpoint.
      if (!all_finite(samples())) return non_finite(step, "the updated generator produces non-finite samples");
      s.save_checkpoint();
    }
    if (last) s.write_pictures("final", samples());
    if (on_step) on_step(report);
  }
  return {TrainStatus::finished, s.step, "", last_evaluation};
}

Evaluation Trainer::evaluate() { return state_->evaluate(state_->evaluation_samples()); }
const TrainConfig& Trainer::config() const { return state_->config; }
int64_t Trainer::step() const { return state_->step; }

std::vector<at::Tensor> Trainer::generator_state() const {
  std::vector<at::Tensor> tensors;
  for (const auto& parameter : state_->networks.generator->parameters()) tensors.push_back(parameter.detach().clone());
  for (const auto& buffer : state_->networks.generator->buffers()) tensors.push_back(buffer.detach().clone());
  return tensors;
}

struct SavedGenerator::State {
  TrainConfig config;
  Generator generator{nullptr};
  int64_t step = 0;
};

SavedGenerator::SavedGenerator(std::unique_ptr<State> state) : state_(std::move(state)) {}
SavedGenerator::SavedGenerator(SavedGenerator&&) noexcept = default;
SavedGenerator::~SavedGenerator() = default;

SavedGenerator SavedGenerator::load(const std::string& path) {
  const std::string file = checkpoint_path_of(path);
  SINKHORN_CHECK(io::path_exists(file), "--checkpoint '" << path << "' does not exist");
  torch::serialize::InputArchive archive = open_checkpoint(file);
  auto state = std::make_unique<State>();
  state->config = saved_config(archive);
  c10::IValue value;
  archive.read("step", value);
  state->step = value.toInt();
  state->generator = Generator(state->config.generator);
  torch::serialize::InputArchive part;
  archive.read("generator", part);
  state->generator->load(part);
  state->generator->eval();
  return SavedGenerator(std::move(state));
}

at::Tensor SavedGenerator::sample(int64_t n, uint64_t seed) {
  SINKHORN_CHECK(n >= 1, "--n must be at least 1, got " << n);
  torch::NoGradGuard no_grad;
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(mix(seed));
  return state_->generator->forward(state_->generator->sample_latent(n, generator));
}

at::Tensor SavedGenerator::decode_lattice(int64_t rows) {
  SINKHORN_CHECK(rows >= 2, "--lattice must be at least 2 rows, got " << rows);
  torch::NoGradGuard no_grad;
  return state_->generator->forward(state_->generator->latent_lattice(rows));
}

const TrainConfig& SavedGenerator::config() const { return state_->config; }
int64_t SavedGenerator::step() const { return state_->step; }

}  // namespace sinkhorn::gen
