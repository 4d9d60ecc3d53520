#!/usr/bin/env bash
# Experiment 3 of docs/reproduction.md: learning a 2-D toy with the paper's loss E_eps for several
# eps (blur) and numbers of unrolled Sinkhorn iterations L, then one picture of all the fits.
# Usage: experiments/toy_learning.sh [RESULTS_DIR] [STEPS]   (defaults: runs/toy_learning, 600)
set -euo pipefail
results="${1:-runs/toy_learning}"
steps="${2:-600}"
sinkhorn="${SINKHORN:-build/sinkhorn}"
mkdir -p "$results"
for blur in 0.1 0.5 2; do
  for iterations in 1 10 100; do
    "$sinkhorn" train --data ring8 --loss primal --gradient unrolled --iterations "$iterations" --blur "$blur" \
      --steps "$steps" --eval-every "$steps" --sample-every 0 --out "$results/blur${blur}_L${iterations}" \
      --overwrite --threads "${THREADS:-2}" > /dev/null
    tail -n 1 "$results/blur${blur}_L${iterations}/metrics.csv" | sed "s/^/blur ${blur} L ${iterations}: /"
  done
done
"${PYTHON:-${SINKHORN_VENV:-/opt/sinkhorn/venv}/bin/python}" "$(dirname "$0")/plot.py" toy_learning "$results" "$results"
echo "figure: $results/toy_learning.png"
