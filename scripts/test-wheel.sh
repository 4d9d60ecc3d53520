#!/usr/bin/env bash
# make test-wheel: builds the wheel (scripts/wheel.sh), installs it into a fresh virtual environment
# that holds only PyTorch (the pinned release, from PyPI), pytest and NumPy (the tests' oracle), and
# runs the Python tests against the installed package (not the build folder) there; then checks
# with ldd that the extension needs no library from the build machine's -dev packages. The tests
# that need GeomLoss, POT or hypothesis, the command line or a build tree are left to make test.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"
bash scripts/wheel.sh
wheel="$(ls -t dist/sinkhorn-*.whl | head -1)"
fresh="${SINKHORN_WHEEL_VENV:-/tmp/sinkhorn-wheel-venv}"
rm -rf "$fresh"
/usr/bin/python3 -m venv "$fresh"
torch_pin="$(grep -E '^torch==' scripts/requirements.txt)"
numpy_pin="$(grep -E '^numpy==' scripts/requirements.txt)"
pytest_pin="$(grep -E '^pytest==' scripts/requirements.txt)"
start=$(date +%s.%N)
"$fresh/bin/python" -m pip install --quiet --disable-pip-version-check "$torch_pin" "$pytest_pin" "$numpy_pin"
torch_done=$(date +%s.%N)
"$fresh/bin/python" -m pip install --quiet --disable-pip-version-check "$wheel"
end=$(date +%s.%N)
echo "test-wheel: PyTorch, pytest and NumPy installed in $(echo "$torch_done - $start" | bc) s, the wheel in $(echo "$end - $torch_done" | bc) s"
cd /tmp  # not the clone: the package must come from the environment
"$fresh/bin/python" -c "import sinkhorn, os; print('test-wheel: imports', os.path.dirname(sinkhorn.__file__))"
extension="$("$fresh/bin/python" -c "import sinkhorn._C as c; print(c.__file__)")"
# Everything the extension needs is in the environment: its own libraries (sinkhorn.libs) or
# PyTorch's, loaded by `import torch`; ldd alone reports PyTorch's as not found, nothing else.
missing="$(ldd "$extension" | grep 'not found' | grep -vE 'libtorch|libc10|libgomp' || true)"
[[ -z "$missing" ]] || { echo "test-wheel: the extension needs libraries outside the wheel and PyTorch:"; echo "$missing"; exit 1; }
if ldd "$extension" | grep -E '=> /(usr/)?lib/.*(libhwy|libpng|libz|liblemon|libgloo)'; then
  echo "test-wheel: the extension links a -dev package's library from the system"; exit 1
fi
"$fresh/bin/python" -m pytest -q -p no:cacheprovider "$here/python/tests" \
  --ignore "$here/python/tests/test_ot.py" --ignore "$here/python/tests/test_geomloss_parity.py" \
  --ignore "$here/python/tests/test_properties.py" --ignore "$here/python/tests/test_distributed.py"
