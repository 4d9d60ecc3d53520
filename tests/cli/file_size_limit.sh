#!/usr/bin/env bash
# End to end, without root: a full disk met as a file-size limit (ulimit -f, SIGXFSZ ignored, so a
# write past it fails with EFBIG as a write to a full disk fails with ENOSPC). A resume whose
# checkpoint does not fit ends with exit status 2 and one line naming the file and the last good
# checkpoint, which stays as it was; `sample` into the limit leaves no partial file. No temporary
# file stays behind. Usage: file_size_limit.sh sinkhorn
set -euo pipefail
sinkhorn="$1"
source "$(dirname "$0")/lib.sh"
run="$scratch/run"
# --hidden 128: a checkpoint of about 200 KB, past the 100 KiB limit below.
"$sinkhorn" train --steps 2 --checkpoint-every 2 --out "$run" --threads 1 --hidden 128 --batch-size 32 --blur 0.3 \
  --eval-samples 100 --heldout 100 > "$scratch/train.log" 2>&1 || fail "the first run failed" "$scratch/train.log"
before="$(sha256sum < "$run/checkpoint.pt")"
# limited COMMAND...: COMMAND with files limited to 100 KiB (bash counts ulimit -f in KiB).
limited() { (trap '' XFSZ; ulimit -f 100; exec "$@"); }
status=0
limited "$sinkhorn" train --resume --out "$run" --steps 4 --threads 1 > "$scratch/resume.log" 2>&1 || status=$?
[[ "$status" == 2 ]] || fail "expected exit status 2, got $status" "$scratch/resume.log"
grep -qF "sinkhorn train: error: --out cannot write '$run/checkpoint.pt': File too large; the last good checkpoint (step 2) is kept in $run/checkpoint.pt" \
  "$scratch/resume.log" || fail "the message names neither the file nor the checkpoint kept" "$scratch/resume.log"
[[ "$(sha256sum < "$run/checkpoint.pt")" == "$before" ]] || fail "the last good checkpoint changed"
status=0
limited "$sinkhorn" sample --checkpoint "$run" --n 100000 --out "$scratch/s.npy" --threads 1 > "$scratch/sample.log" 2>&1 ||
  status=$?
[[ "$status" == 2 ]] || fail "sample: expected exit status 2, got $status" "$scratch/sample.log"
grep -qF "sinkhorn sample: error: --out cannot write '$scratch/s.npy': File too large" "$scratch/sample.log" ||
  fail "sample: wrong message" "$scratch/sample.log"
[[ ! -e "$scratch/s.npy" ]] || fail "sample left a partial file"
leftovers="$(find "$scratch" -name '*.tmp')"
[[ -z "$leftovers" ]] || fail "temporary files left: $leftovers"
"$sinkhorn" train --resume --out "$run" --steps 3 --threads 1 > "$scratch/again.log" 2>&1 ||
  fail "the run does not resume after the failure" "$scratch/again.log"
grep -q "resuming .* at step 2 of 3" "$scratch/again.log" || fail "wrong resume" "$scratch/again.log"
echo "ok: a file-size limit ended the run cleanly and kept the last good checkpoint"
