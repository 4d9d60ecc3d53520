# Helpers of the end-to-end tests: processes started in the background are tracked and killed on
# exit (by PID), the scratch folder removed.
scratch="$(mktemp -d)"
started=()
cleanup() {
  for pid in "${started[@]}"; do
    kill -CONT "$pid" 2>/dev/null || true
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$scratch"
}
trap cleanup EXIT

# wait_for SECONDS COMMAND...: polls COMMAND every 0.2 s; fails the test after SECONDS.
wait_for() {
  local limit=$(( $1 * 5 )); shift
  for _ in $(seq 1 "$limit"); do
    if "$@" 2>/dev/null; then return 0; fi
    sleep 0.2
  done
  echo "timed out waiting for: $*"
  exit 1
}

# digest FOLDER: every file's SHA-256, except the lock file and a staging folder (the run's own
# bookkeeping), so that a refused command can be shown to leave a run byte for byte as it was.
digest() {
  (cd "$1" && find . -type f ! -name .lock ! -path './.staging/*' -print0 | sort -z | xargs -0 -r sha256sum)
}

# fail MESSAGE [LOG]: prints the log and the message, exits 1.
fail() {
  [[ -n "${2:-}" && -f "$2" ]] && cat "$2"
  echo "FAIL: $1"
  exit 1
}

# A quick, never-ending toy run (stopped by the test): small network, a row of metrics.csv a step.
quick_run=(--threads 1 --hidden 16 --batch-size 32 --blur 0.3 --eval-every 1000000 --eval-samples 100
           --heldout 100 --log-every 1)

# start_training LOG ROW OUT [FLAGS...]: a never-ending quick_run into OUT in the background, its
# output in LOG, its PID in $training_pid (killed on exit); returns once metrics.csv has step ROW.
start_training() {
  local log="$1" row="$2" out="$3"; shift 3
  "$sinkhorn" train --steps 1000000 --out "$out" "${quick_run[@]}" "$@" > "$log" 2>&1 &
  training_pid=$!
  started+=("$training_pid")
  wait_for 60 grep -q "^$row," "$out/metrics.csv"
}
