#!/usr/bin/env bash
# End to end: SIGTERM (a scheduler's stop, `kill`) during `sinkhorn train` is handled like Ctrl-C:
# a checkpoint is saved, the exit status is 143 (128 + 15), and the run resumes from it.
# Usage: sigterm_and_resume.sh path/to/sinkhorn
set -euo pipefail
sinkhorn="$1"
source "$(dirname "$0")/lib.sh"
run="$scratch/run"
start_training "$scratch/log" 5 "$run" --checkpoint-every 1000000
pid=$training_pid
kill -TERM "$pid"
status=0
wait "$pid" || status=$?
[[ "$status" == 143 ]] || fail "expected exit status 143 after SIGTERM, got $status" "$scratch/log"
[[ -f "$run/checkpoint.pt" ]] || fail "no checkpoint after SIGTERM" "$scratch/log"
[[ ! -e "$run/.lock" ]] || fail "the lock file outlived the run"
step="$(grep -o 'terminated (SIGTERM) at step [0-9]*' "$scratch/log" | grep -o '[0-9]*$')" ||
  fail "no termination message" "$scratch/log"
"$sinkhorn" train --resume --out "$run" --steps "$((step + 2))" --threads 1 > "$scratch/resume.log" 2>&1 ||
  fail "the resume failed" "$scratch/resume.log"
grep -q "resuming .* at step $step of $((step + 2))" "$scratch/resume.log" || fail "wrong resume" "$scratch/resume.log"
grep -q "done: $((step + 2)) steps" "$scratch/resume.log" || fail "the resumed run did not finish" "$scratch/resume.log"
echo "ok: terminated at step $step with 143, resumed to $((step + 2))"
