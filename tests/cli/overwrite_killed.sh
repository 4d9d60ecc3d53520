#!/usr/bin/env bash
# End to end: `train --overwrite` keeps the old run until the new one's first checkpoint. A new run
# killed (SIGKILL) before then leaves every file of the old run byte for byte as it was; the old run
# still resumes, and the dead run's staging folder is removed then. Usage: overwrite_killed.sh sinkhorn
set -euo pipefail
sinkhorn="$1"
source "$(dirname "$0")/lib.sh"
run="$scratch/run"
"$sinkhorn" train --steps 4 --sample-every 2 --out "$run" "${quick_run[@]}" > "$scratch/old.log" 2>&1 ||
  fail "the old run failed" "$scratch/old.log"
before="$(digest "$run")"
"$sinkhorn" train --overwrite --seed 3 --steps 1000000 --checkpoint-every 1000000 --out "$run" "${quick_run[@]}" \
  > "$scratch/new.log" 2>&1 &
new=$!
started+=("$new")
wait_for 60 grep -q '^3,' "$run/.staging/metrics.csv"
[[ "$(digest "$run")" == "$before" ]] || fail "the running new run changed the old run's files"
kill -KILL "$new"
wait "$new" 2>/dev/null || true
[[ "$(digest "$run")" == "$before" ]] || fail "the killed new run changed the old run's files"
[[ -d "$run/.staging" ]] || fail "expected the killed run's staging folder"
"$sinkhorn" train --resume --out "$run" --steps 5 --threads 1 > "$scratch/resume.log" 2>&1 ||
  fail "the old run does not resume" "$scratch/resume.log"
grep -q "resuming .* at step 4 of 5" "$scratch/resume.log" || fail "wrong resume" "$scratch/resume.log"
[[ ! -e "$run/.staging" ]] || fail "the stale staging folder was not removed"
echo "ok: the old run survived a new run killed before its first checkpoint"
