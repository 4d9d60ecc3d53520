#!/usr/bin/env bash
# Experiment 5 of docs/reproduction.md: the paper's Algorithm 2 (a learned cost: a DCGAN critic
# f_phi trained adversarially, c(x, y) = |f_phi(x) - f_phi(y)|, p = 1) with the Sinkhorn divergence,
# against MMD GAN's baseline (a Gaussian-mixture kernel on the same critic), on MNIST.
# Usage: experiments/learned_cost.sh MNIST_DIR [RESULTS_DIR] [STEPS]
#        (CIFAR-10: DATA=cifar10 SPLIT=train experiments/learned_cost.sh CIFAR_DIR ...)
# The runs (S_eps for each blur of BLURS, default "0.05 0.5 5", and the MMD baseline) train side
# by side, sharing the cores (THREADS overrides); each logs to RESULTS_DIR/NAME.log. A stopped run
# continues with  build/sinkhorn train --resume --out RESULTS_DIR/NAME --steps N.
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: experiments/learned_cost.sh MNIST_DIR (or CIFAR_DIR with DATA=cifar10) [RESULTS_DIR] [STEPS]" >&2; exit 2; }
data_path="$1"
results="${2:-runs/learned_cost}"
steps="${3:-5000}"
sinkhorn="${SINKHORN:-build/sinkhorn}"
data="${DATA:-mnist}"
split="${SPLIT:-test}"
# DCGAN generator (100-D Gaussian latent) and DCGAN critic (16 features), both 32 channels wide,
# RMSprop 5e-4 for both players, weight clipping 0.01, 5 critic updates per generator update,
# batch 64: the paper's Algorithm 2 with WGAN's batch and a 10x learning rate so that a CPU run of
# a few thousand steps shows digits (docs/reproduction.md, experiment 5).
common=(--data "$data" --data-path "$data_path" --split "$split" --cost learned --steps "$steps"
        --generator dcgan --latent-dim 100 --latent gaussian --width 32 --critic dcgan --critic-width 32
        --feature-dim 16 --optimizer rmsprop --lr 5e-4 --critic-lr 5e-4 --clip 0.01 --critic-steps 5
        --batch-size 64 --eval-every 250 --sample-every 1000 --overwrite)
mkdir -p "$results"
# The Sinkhorn divergence S_eps on the critic's features for each blur of BLURS (eps = blur, p = 1),
# and the MMD baseline with Gaussian widths 0.05 x {1, 2, 4, 8, 16}; all side by side.
runs=()
for blur in ${BLURS:-0.05 0.5 5}; do runs+=("sinkhorn_blur$blur --loss divergence --blur $blur"); done
runs+=("mmd --loss gaussian_mixture --blur 0.05")
cores="$(nproc)"
threads="${THREADS:-$(( cores > ${#runs[@]} ? cores / ${#runs[@]} : 1 ))}"
pids=()
for run in "${runs[@]}"; do
  read -r name flags <<< "$run"
  # shellcheck disable=SC2086  # the flags split into words on purpose
  "$sinkhorn" train "${common[@]}" --threads "$threads" $flags --out "$results/$name" > "$results/$name.log" 2>&1 &
  pids+=($!)
done
status=0
for k in "${!pids[@]}"; do
  wait "${pids[$k]}" || { status=1; echo "run ${runs[$k]%% *} failed: see $results/${runs[$k]%% *}.log" >&2; }
done
[ "$status" -eq 0 ] || exit 1
"${PYTHON:-${SINKHORN_VENV:-/opt/sinkhorn/venv}/bin/python}" "$(dirname "$0")/plot.py" learned_cost "$results" "$results"
echo "figure: $results/learned_cost.png"
if [ "$data" = mnist ]; then
  # The digit classifier's score of each generator (experiments/digit_score.py).
  folders=()
  for run in "${runs[@]}"; do folders+=("$results/${run%% *}"); done
  SINKHORN="$sinkhorn" "${PYTHON:-${SINKHORN_VENV:-/opt/sinkhorn/venv}/bin/python}" "$(dirname "$0")/digit_score.py" "$data_path" "$results/digit_score.csv" \
    "${folders[@]}"
fi
