#include "gen/train_config.h"

#include <nlohmann/json.hpp>

#include "util/check.h"

namespace sinkhorn::gen {

using nlohmann::json;

void validate(const TrainConfig& config) {
  SINKHORN_CHECK_ARG(config.cost == "fixed" || config.cost == "learned", "cost",
                     "must be 'fixed' or 'learned', got '" << config.cost << "'");
  SINKHORN_CHECK_ARG(config.optimizer == "adam" || config.optimizer == "rmsprop", "optimizer",
                     "must be 'adam' or 'rmsprop', got '" << config.optimizer << "'");
  SINKHORN_CHECK_ARG(config.learning_rate > 0 && std::isfinite(config.learning_rate), "learning_rate",
                     "must be positive, got " << config.learning_rate);
  SINKHORN_CHECK_ARG(config.schedule == "constant" || config.schedule == "cosine", "schedule",
                     "must be 'constant' or 'cosine', got '" << config.schedule << "'");
  SINKHORN_CHECK_ARG(config.critic_learning_rate > 0 && std::isfinite(config.critic_learning_rate),
                     "critic_learning_rate", "must be positive, got " << config.critic_learning_rate);
  SINKHORN_CHECK_ARG(config.critic_steps >= 1, "critic_steps", "must be at least 1, got " << config.critic_steps);
  SINKHORN_CHECK_ARG(config.clip >= 0 && std::isfinite(config.clip), "clip", "must be >= 0, got " << config.clip);
  SINKHORN_CHECK_ARG(config.batch_size >= 2, "batch_size", "must be at least 2, got " << config.batch_size);
  SINKHORN_CHECK_ARG(config.steps >= 0, "steps", "must be >= 0, got " << config.steps);
  SINKHORN_CHECK_ARG(config.eval_every >= 1, "eval_every", "must be at least 1, got " << config.eval_every);
  SINKHORN_CHECK_ARG(config.eval_samples >= 2, "eval_samples", "must be at least 2, got " << config.eval_samples);
  SINKHORN_CHECK_ARG(config.eval_blur > 0 && std::isfinite(config.eval_blur), "eval_blur",
                     "must be positive, got " << config.eval_blur);
  SINKHORN_CHECK_ARG(config.sample_every >= 0, "sample_every", "must be >= 0, got " << config.sample_every);
  SINKHORN_CHECK_ARG(config.checkpoint_every >= 1, "checkpoint_every",
                     "must be at least 1, got " << config.checkpoint_every);
  SINKHORN_CHECK_ARG(config.log_every >= 1, "log_every", "must be at least 1, got " << config.log_every);
  SINKHORN_CHECK_ARG(!config.out_dir.empty(), "out_dir", "must name a folder");
  validate(config.loss);  // its errors name the loss's own settings (blur, p, ...)
}

std::string to_json(const TrainConfig& c) {
  json loss{{"loss", to_string(c.loss.loss)},
            {"p", c.loss.p},
            {"blur", c.loss.blur},
            {"scaling", c.loss.scaling},
            {"tolerance", c.loss.tolerance},
            {"max_iterations", c.loss.max_iterations},
            {"gradient", to_string(c.loss.gradient)},
            {"backend", to_string(c.loss.backend)}};
  loss["reach"] = c.loss.reach ? json(*c.loss.reach) : json(nullptr);
  loss["diameter"] = c.loss.diameter ? json(*c.loss.diameter) : json(nullptr);
  loss["iterations"] = c.loss.iterations ? json(*c.loss.iterations) : json(nullptr);
  const json document{
      {"data", {{"name", c.data.name}, {"path", c.data.path}, {"split", c.data.split}, {"heldout", c.data.heldout}}},
      {"generator",
       {{"architecture", c.generator.architecture},
        {"latent_dim", c.generator.latent_dim},
        {"latent", c.generator.latent},
        {"hidden", c.generator.hidden},
        {"activation", c.generator.activation},
        {"width", c.generator.width},
        {"sample_shape", c.generator.sample_shape}}},
      {"loss", loss},
      {"cost", c.cost},
      {"critic",
       {{"architecture", c.critic.architecture},
        {"feature_dim", c.critic.feature_dim},
        {"width", c.critic.width},
        {"sample_shape", c.critic.sample_shape}}},
      {"critic_steps", c.critic_steps},
      {"clip", c.clip},
      {"optimizer", c.optimizer},
      {"learning_rate", c.learning_rate},
      {"schedule", c.schedule},
      {"critic_learning_rate", c.critic_learning_rate},
      {"batch_size", c.batch_size},
      {"steps", c.steps},
      {"seed", c.seed},
      {"eval_every", c.eval_every},
      {"eval_samples", c.eval_samples},
      {"eval_blur", c.eval_blur},
      {"sample_every", c.sample_every},
      {"checkpoint_every", c.checkpoint_every},
      {"log_every", c.log_every},
      {"out_dir", c.out_dir}};
  return document.dump(2) + "\n";
}

TrainConfig train_config_from_json(const std::string& text) {
  TrainConfig c;
  try {
    const json j = json::parse(text);
    const json& data = j.at("data");
    c.data.name = data.at("name").get<std::string>();
    c.data.path = data.at("path").get<std::string>();
    c.data.split = data.at("split").get<std::string>();
    c.data.heldout = data.at("heldout").get<int64_t>();
    const json& g = j.at("generator");
    c.generator.architecture = g.at("architecture").get<std::string>();
    c.generator.latent_dim = g.at("latent_dim").get<int64_t>();
    c.generator.latent = g.at("latent").get<std::string>();
    c.generator.hidden = g.at("hidden").get<int64_t>();
    c.generator.activation = g.at("activation").get<std::string>();
    c.generator.width = g.at("width").get<int64_t>();
    c.generator.sample_shape = g.at("sample_shape").get<std::vector<int64_t>>();
    const json& l = j.at("loss");
    c.loss.loss = parse_loss(l.at("loss").get<std::string>());
    c.loss.p = l.at("p").get<int>();
    c.loss.blur = l.at("blur").get<double>();
    c.loss.scaling = l.at("scaling").get<double>();
    c.loss.tolerance = l.at("tolerance").get<double>();
    c.loss.max_iterations = l.at("max_iterations").get<int>();
    c.loss.gradient = parse_gradient_mode(l.at("gradient").get<std::string>());
    c.loss.backend = parse_backend(l.at("backend").get<std::string>());
    if (!l.at("reach").is_null()) c.loss.reach = l.at("reach").get<double>();
    if (!l.at("diameter").is_null()) c.loss.diameter = l.at("diameter").get<double>();
    if (!l.at("iterations").is_null()) c.loss.iterations = l.at("iterations").get<int>();
    c.cost = j.at("cost").get<std::string>();
    const json& f = j.at("critic");
    c.critic.architecture = f.at("architecture").get<std::string>();
    c.critic.feature_dim = f.at("feature_dim").get<int64_t>();
    c.critic.width = f.at("width").get<int64_t>();
    c.critic.sample_shape = f.at("sample_shape").get<std::vector<int64_t>>();
    c.critic_steps = j.at("critic_steps").get<int64_t>();
    c.clip = j.at("clip").get<double>();
    c.optimizer = j.at("optimizer").get<std::string>();
    c.learning_rate = j.at("learning_rate").get<double>();
    c.schedule = j.at("schedule").get<std::string>();
    c.critic_learning_rate = j.at("critic_learning_rate").get<double>();
    c.batch_size = j.at("batch_size").get<int64_t>();
    c.steps = j.at("steps").get<int64_t>();
    c.seed = j.at("seed").get<uint64_t>();
    c.eval_every = j.at("eval_every").get<int64_t>();
    c.eval_samples = j.at("eval_samples").get<int64_t>();
    c.eval_blur = j.at("eval_blur").get<double>();
    c.sample_every = j.at("sample_every").get<int64_t>();
    c.checkpoint_every = j.at("checkpoint_every").get<int64_t>();
    c.log_every = j.at("log_every").get<int64_t>();
    c.out_dir = j.at("out_dir").get<std::string>();
  } catch (const json::exception& error) {
    SINKHORN_CHECK(false, "malformed training configuration: " << error.what());
  }
  return c;
}

}  // namespace sinkhorn::gen
