#!/usr/bin/env bash
# Experiment 5 of docs/reproduction.md: the paper's Algorithm 2 (a learned cost: a DCGAN critic
# f_phi trained adversarially, c(x, y) = |f_phi(x) - f_phi(y)|, p = 1) with the Sinkhorn divergence,
# against MMD GAN's baseline (a Gaussian-mixture kernel on the same critic), on MNIST.
# Usage: experiments/learned_cost.sh MNIST_DIR [RESULTS_DIR] [STEPS]
#        (CIFAR-10: DATA=cifar10 experiments/learned_cost.sh CIFAR_DIR ...)
set -euo pipefail
data_path="$1"
results="${2:-runs/learned_cost}"
steps="${3:-800}"
sinkhorn="${SINKHORN:-build/sinkhorn}"
data="${DATA:-mnist}"
split="${SPLIT:-test}"
common=(--data "$data" --data-path "$data_path" --split "$split" --cost learned --steps "$steps"
        --eval-every 100 --sample-every 0 --threads "${THREADS:-2}" --overwrite)
# Both losses on the critic's features: S_eps with blur 0.05 and the MMD with widths 0.05 x {1..16}.
"$sinkhorn" train "${common[@]}" --loss divergence --blur 0.05 --out "$results/sinkhorn"
"$sinkhorn" train "${common[@]}" --loss gaussian_mixture --blur 0.05 --out "$results/mmd"
"${PYTHON:-python3}" "$(dirname "$0")/plot.py" learned_cost "$results" "$results"
echo "figure: $results/learned_cost.png"
