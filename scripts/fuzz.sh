#!/usr/bin/env bash
# make fuzz: builds one libFuzzer target per reader of untrusted files (npy, csv, IDX, CIFAR-10,
# checkpoint.pt, config.json) with clang, AddressSanitizer and UndefinedBehaviorSanitizer on every
# object, then runs each for FUZZ_SECONDS (default 60) from the seed corpus in fuzz/corpus.
# A reader may refuse input only with sinkhorn::Error; a crash, a sanitizer report, a hang (10 s)
# or an allocation beyond 2 GB is a finding, saved under build-fuzz/findings/<target>/. Fix it and
# keep the input in fuzz/regressions/<target>/, which `make test` replays (tests/io/fuzz_regressions_test.cpp).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${FUZZ_SECONDS:-60}"
jobs="${JOBS:-$(nproc)}"
build=build-fuzz
bash scripts/install-deps.sh --fuzz
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
  -DCMAKE_CXX_FLAGS="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer" \
  -DSINKHORN_BUILD_TESTS=OFF -DSINKHORN_WITH_CUDA=OFF -DSINKHORN_OPENMP=OFF -DSINKHORN_BUILD_FUZZERS=ON >/dev/null
cmake --build "$build" -j "$jobs" --target fuzzers sinkhorn

# LibTorch is not built with the sanitizers: its allocations are not ours to report.
export ASAN_OPTIONS="detect_leaks=0:alloc_dealloc_mismatch=0:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="print_stacktrace=1:${UBSAN_OPTIONS:-}"

# A real checkpoint and config.json as seeds, from a one-step run of the instrumented tool.
seeds="$build/generated-seeds"
rm -rf "$seeds" && mkdir -p "$seeds"
"$build/sinkhorn" train --data ring8 --steps 1 --hidden 8 --batch-size 16 --eval-samples 16 --heldout 16 \
  --threads 1 --out "$seeds/run" >/dev/null 2>&1
found=0
for target in npy csv idx cifar checkpoint config; do
  corpus="$build/corpus/$target" findings="$build/findings/$target"
  mkdir -p "$corpus" "$findings"
  cp -n fuzz/corpus/"$target"/* "$corpus"/ 2>/dev/null || true
  [[ -d fuzz/regressions/$target ]] && cp -n fuzz/regressions/"$target"/* "$corpus"/ 2>/dev/null || true
  [[ $target == checkpoint ]] && cp "$seeds/run/checkpoint.pt" "$corpus/seed.pt"
  [[ $target == config ]] && cp "$seeds/run/config.json" "$corpus/seed.json"
  echo "fuzz: $target for ${seconds}s"
  if ! "$build/fuzz/${target}_fuzzer" "$corpus" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
         -max_len=1048576 -artifact_prefix="$findings/" -print_final_stats=1 >"$build/$target.log" 2>&1; then
    found=1
    echo "fuzz: $target FOUND a problem: $(ls "$findings" | head -3) (log: $build/$target.log)"
    grep -m 5 -E "ERROR|SUMMARY|runtime error|terminate" "$build/$target.log" || true
  else
    grep -E "stat::number_of_executed_runs|cov:" "$build/$target.log" | tail -2 | tr '\n' ' '
    echo
  fi
done
exit "$found"
