#!/usr/bin/env bash
# Installs what sinkhorn needs, only what is missing. Safe to run again.
#   1. Debian's packages for the build (compilers, CMake, GoogleTest, Highway, LEMON, libpng, ...).
#   2. One virtual environment, outside the clone, holding the pinned PyTorch 2.x from PyPI (its
#      LibTorch is the one the build links) and the Python test tools: scripts/requirements.txt.
#      It is made from Debian's interpreter, /usr/bin/python3 (not a pyenv `python3` on PATH), so
#      its headers come from python3-dev and every machine of this kind gets the same one.
# Usage: scripts/install-deps.sh            (build + tests)
#        scripts/install-deps.sh --bench    (also what the comparison benchmarks use)
#        scripts/install-deps.sh --fuzz     (also clang and libFuzzer, for make fuzz)
# Environment: SINKHORN_VENV (default /opt/sinkhorn/venv) moves the environment.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${SINKHORN_VENV:-/opt/sinkhorn/venv}"
base_python=/usr/bin/python3

packages=(build-essential cmake make pkg-config python3 python3-venv python3-dev
          libgtest-dev googletest libbenchmark-dev libhwy-dev
          libpng-dev zlib1g-dev nlohmann-json3-dev liblemon-dev libgloo-dev)
requirements=("$here/requirements.txt")
for option in "$@"; do
  case "$option" in
    --bench) requirements+=("$here/requirements-bench.txt") ;;
    --fuzz) packages+=(clang libclang-rt-14-dev) ;;
    *) echo "install-deps: unknown option $option (--bench, --fuzz)" >&2; exit 2 ;;
  esac
done

missing=()
for package in "${packages[@]}"; do
  # dpkg-query prints "install ok installed" only for fully installed packages.
  if [[ "$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null)" != "install ok installed" ]]; then
    missing+=("$package")
  fi
done
if (( ${#missing[@]} > 0 )); then
  echo "install-deps: installing ${missing[*]}"
  sudo_prefix=()
  if [[ "$(id -u)" != 0 ]]; then
    sudo_prefix=(sudo)
  fi
  "${sudo_prefix[@]}" apt-get update -q
  DEBIAN_FRONTEND=noninteractive "${sudo_prefix[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# The environment is current when it holds a stamp equal to the requirements it was made from.
stamp="$venv/sinkhorn-requirements.txt"
wanted="$(cat "${requirements[@]}")"
if [[ -x "$venv/bin/python" && -f "$stamp" ]] && [[ "$(cat "$stamp")" == "$wanted"* ]]; then
  exit 0
fi
if [[ ! -x "$venv/bin/python" ]]; then
  echo "install-deps: creating the Python environment $venv (from $base_python)"
  mkdir -p "$(dirname "$venv")"
  "$base_python" -m venv "$venv"
fi
# PyTorch's wheel and its CUDA libraries are ~4 GB: the first install takes minutes.
echo "install-deps: installing ${requirements[*]} into $venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
reqs=()
for r in "${requirements[@]}"; do reqs+=(-r "$r"); done
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${reqs[@]}"
printf '%s' "$wanted" > "$stamp"
