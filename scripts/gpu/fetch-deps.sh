#!/usr/bin/env bash
# Run here (a Debian machine with a package registry), before a GPU check: downloads the Debian
# packages the build needs into .gpu-deps/ (git-ignored), for scripts/gpu/check.sh to unpack on a
# GPU machine that has CUDA, CMake, ninja, a compiler and PyTorch but no -dev packages and no
# registry. Also copies the MNIST test split there when ../shared/data/mnist exists (the GPU
# machine gets the repository only), and pytest and NumPy wheels for its Python. Carry .gpu-deps
# with the call: about 25 MB.
# Usage: scripts/gpu/fetch-deps.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
deps="$root/.gpu-deps"
# Headers and static or shared libraries for every find_package of CMakeLists.txt and tests/,
# with the shared libraries' runtime packages (Debian's names).
packages=(libhwy-dev libhwy1 libpng-dev libpng16-16 zlib1g-dev nlohmann-json3-dev
          liblemon-dev liblemon1.3.1 libgtest-dev googletest libgloo-dev)
mkdir -p "$deps"
rm -f "$deps"/*.deb
if ! (cd "$deps" && apt-get download "${packages[@]}" >/dev/null 2>&1); then
  apt-get update -q >/dev/null
  (cd "$deps" && apt-get download "${packages[@]}")
fi
# pytest and NumPy wheels for the GPU machine's Python 3.12, in case its environment lacks them
# (the Python tests need both; check.sh installs only what is missing, into a scratch folder).
rm -rf "$deps/wheels"
pip_for_download="${SINKHORN_VENV:-/opt/sinkhorn/venv}/bin/python"
"$pip_for_download" -m pip download --quiet --disable-pip-version-check --only-binary=:all: --python-version 3.12 \
  --implementation cp --abi cp312 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
  -d "$deps/wheels" pytest==9.2.0 numpy==2.4.6
mnist="$root/../shared/data/mnist"
if [[ -d "$mnist" ]]; then
  mkdir -p "$deps/mnist"
  cp "$mnist"/t10k-*-idx*-ubyte.gz "$deps/mnist/"
fi
du -sh "$deps"
ls "$deps"
