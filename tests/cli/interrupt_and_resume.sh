#!/usr/bin/env bash
# End to end: Ctrl-C (SIGINT) during `sinkhorn train` saves a checkpoint and exits with 130; the run
# then resumes from it. Usage: interrupt_and_resume.sh path/to/sinkhorn
set -euo pipefail
sinkhorn="$1"
folder="$(mktemp -d)"
trap 'rm -rf "$folder"' EXIT
"$sinkhorn" train --steps 1000000 --out "$folder/run" --threads 1 --hidden 16 --batch-size 32 --blur 0.3 \
  --eval-every 1000000 --eval-samples 100 --heldout 100 --checkpoint-every 1000000 --log-every 1 \
  > "$folder/log" 2>&1 &
pid=$!
# Wait until training is under way (step 5 logged), at most 60 s.
for _ in $(seq 1 300); do
  if grep -q '^5,' "$folder/run/metrics.csv" 2>/dev/null; then break; fi
  sleep 0.2
done
kill -INT "$pid"
status=0
wait "$pid" || status=$?
cat "$folder/log"
[[ "$status" == 130 ]] || { echo "expected exit status 130 after SIGINT, got $status"; exit 1; }
[[ -f "$folder/run/checkpoint.pt" ]] || { echo "no checkpoint after SIGINT"; exit 1; }
grep -q "interrupted at step" "$folder/log" || { echo "no interruption message"; exit 1; }
step="$(grep -o 'interrupted at step [0-9]*' "$folder/log" | grep -o '[0-9]*$')"
"$sinkhorn" train --resume --out "$folder/run" --steps "$((step + 2))" --threads 1 > "$folder/resume.log" 2>&1
grep -q "resuming .* at step $step of $((step + 2))" "$folder/resume.log" || { cat "$folder/resume.log"; exit 1; }
grep -q "done: $((step + 2)) steps" "$folder/resume.log" || { cat "$folder/resume.log"; exit 1; }
echo "ok: interrupted at step $step, resumed to $((step + 2))"
