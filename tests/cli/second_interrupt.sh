#!/usr/bin/env bash
# End to end: the first Ctrl-C (SIGINT) says that the run stops after its step and how to quit at
# once; a second one ends the process at once, without waiting for the step or saving a
# checkpoint. Usage: second_interrupt.sh sinkhorn
set -euo pipefail
sinkhorn="$1"
source "$(dirname "$0")/lib.sh"
run="$scratch/run"
# Slow steps (large batches, a small blur) so that the second signal lands inside the step.
"$sinkhorn" train --steps 1000000 --out "$run" --checkpoint-every 1000000 --threads 1 --hidden 16 \
  --batch-size 4000 --blur 0.01 --eval-every 1000000 --eval-samples 100 --heldout 100 --log-every 1 \
  > "$scratch/log" 2>&1 &
pid=$!
started+=("$pid")
wait_for 120 grep -q '^1,' "$run/metrics.csv"
kill -INT "$pid"
wait_for 30 grep -q "press Ctrl-C again to quit at once without saving" "$scratch/log"
kill -INT "$pid"
status=0
wait "$pid" || status=$?
[[ "$status" == 130 ]] || fail "expected the process to end by SIGINT (130), got $status" "$scratch/log"
if grep -q "interrupted at step" "$scratch/log"; then fail "the second Ctrl-C waited for the step to end" "$scratch/log"; fi
[[ ! -e "$run/checkpoint.pt" ]] || fail "a checkpoint was saved after the second Ctrl-C" "$scratch/log"
echo "ok: a second Ctrl-C quit at once"
