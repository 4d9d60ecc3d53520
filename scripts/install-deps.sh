#!/usr/bin/env bash
# Installs the Debian packages sinkhorn needs, only those missing. Safe to run again.
# Usage: scripts/install-deps.sh            (build + tests)
#        scripts/install-deps.sh --bench    (also what the comparison benchmarks use)
set -euo pipefail

packages=(build-essential cmake make pkg-config libtorch-dev libgtest-dev googletest libbenchmark-dev libhwy-dev
          libpng-dev zlib1g-dev nlohmann-json3-dev liblemon-dev)
if [[ "${1:-}" == "--bench" ]]; then
  packages+=(python3-torch python3-pot python3-numpy python3-matplotlib)
fi

missing=()
for package in "${packages[@]}"; do
  # dpkg-query prints "install ok installed" only for fully installed packages.
  if [[ "$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null)" != "install ok installed" ]]; then
    missing+=("$package")
  fi
done

if (( ${#missing[@]} == 0 )); then
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
sudo_prefix=()
if [[ "$(id -u)" != 0 ]]; then
  sudo_prefix=(sudo)
fi
"${sudo_prefix[@]}" apt-get update -q
DEBIAN_FRONTEND=noninteractive "${sudo_prefix[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
