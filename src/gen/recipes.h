// The training recipes: the settings a run starts from for a data set and a kind of cost, before
// any the user gives. `sinkhorn train` applies its flags on top of recipe_for(), so a program that
// drives gen::Trainer itself gets the same defaults as the command line.
#pragma once

#include <string>

#include "gen/train_config.h"

namespace sinkhorn::gen {

/// The recipe for `data_name` (a toy: ring8, grid25, ...; mnist; cifar10) and `cost`:
///  - toys: an MLP 2 -> 128 -> 128 -> 2 with ReLU on a 2-D Gaussian latent, S_eps with blur 0.1
///    (twice the modes' std), Adam 5e-3 with a cosine decay, evaluation blur 0.05;
///  - mnist: the paper's MLP (2-D uniform latent, 500 -> 500 softplus, sigmoid output), blur 1 on
///    pixels in [0, 1] (eps = 1, the paper's setting), Adam 1e-3, evaluation blur 1;
///  - cifar10: a DCGAN generator on a 100-D uniform latent, otherwise as mnist;
///  - learned cost (Algorithm 2, after MMD GAN): p = 1 (c(x, y) = |f(x) - f(y)|), blur 0.05 for
///    images, RMSprop 5e-5 for both players, a DCGAN critic for images (MLP for toys).
/// Every loss solves to a marginal error of 1e-3 (a batch's sampling noise is far larger); batch
/// 200, 2000 steps, seed 0, the folder runs/<data_name>. An unknown data name is not refused
/// here: the data loader names it.
TrainConfig recipe_for(const std::string& data_name, CostKind cost = CostKind::fixed);

}  // namespace sinkhorn::gen
