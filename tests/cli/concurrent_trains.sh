#!/usr/bin/env bash
# End to end: while one `sinkhorn train` runs in a folder, a second one there (new, --overwrite or
# --resume) is refused at once with exit status 2 and one line naming the folder and the first
# one's PID, and the folder is left byte for byte as it was. Usage: concurrent_trains.sh sinkhorn
set -euo pipefail
sinkhorn="$1"
source "$(dirname "$0")/lib.sh"
run="$scratch/run"
start_training "$scratch/first.log" 3 "$run" --checkpoint-every 2
first=$training_pid
# Paused, the first run still holds its lock but writes nothing: the folder's bytes stand still.
kill -STOP "$first"
before="$(digest "$run")"
for extra in "" "--overwrite" "--resume"; do
  if [[ "$extra" == "--resume" ]]; then args=(--resume --out "$run" --steps 10); else
    args=(--steps 10 --out "$run" "${quick_run[@]}" $extra); fi
  status=0
  timeout 30 "$sinkhorn" train "${args[@]}" > "$scratch/second.log" 2>&1 || status=$?
  [[ "$status" == 2 ]] || fail "second train ($extra): expected exit status 2, got $status" "$scratch/second.log"
  [[ "$(wc -l < "$scratch/second.log")" == 1 ]] || fail "second train ($extra): not one line" "$scratch/second.log"
  grep -qF "sinkhorn train: error: --out '$run' is in use by another sinkhorn process (PID $first," \
    "$scratch/second.log" || fail "second train ($extra): the message names neither folder nor holder" "$scratch/second.log"
  [[ "$(digest "$run")" == "$before" ]] || fail "second train ($extra) changed the run folder"
done
[[ "$(cat "$run/.lock")" == "$first" ]] || fail "the lock file does not hold the first run's PID"
kill -CONT "$first"
kill -TERM "$first"
status=0
wait "$first" || status=$?
[[ "$status" == 143 ]] || fail "the first run: expected 143 after SIGTERM, got $status" "$scratch/first.log"
echo "ok: a second train on a folder in use was refused three ways"
