# Entry points. Each target installs what is missing, so each works on a fresh Debian machine.
#   make demo   build, then train a generator on a built-in 2-D toy (ring of 8 Gaussians, ~3.5 min)
#   make test   build, then run the whole test suite
#   make test-properties  the hypothesis properties of python/tests/test_properties.py with 400
#               examples each instead of make test's 12 (about a minute)
#   make build  build/sinkhorn (the command-line tool), the library and the tests
#   make bench  build the kernel benchmarks and install what bench/compare_cpu.py needs
#   make fuzz   libFuzzer on every file reader, FUZZ_SECONDS each (default 60; not part of make test)
#   make wheel  dist/sinkhorn-*.whl, a manylinux wheel of the Python package (scripts/wheel.sh)
#   make test-wheel  the wheel installed into a fresh environment with PyTorch only, its Python tests
#               run there (scripts/test-wheel.sh; not part of make test: it builds everything again)
BUILD_DIR ?= build
BUILD_TYPE ?= Release
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all deps configure build test test-properties demo bench fuzz wheel test-wheel clean

all: build

deps:
	@bash scripts/install-deps.sh

configure: deps
	cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CMAKE_FLAGS)

build: configure
	cmake --build $(BUILD_DIR) -j $(JOBS)

test: build
	cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS)

test-properties: build
	cd python/tests && SINKHORN_HYPOTHESIS_PROFILE=long OMP_NUM_THREADS=1 ../../$(BUILD_DIR)/sinkhorn-python -m pytest -q -p no:cacheprovider test_properties.py

DEMO_DIR ?= runs/demo

demo: build
	./$(BUILD_DIR)/sinkhorn train --data ring8 --steps 1500 --eval-every 250 --out $(DEMO_DIR) --overwrite --threads $(JOBS)
	@echo "pictures: $(DEMO_DIR)/scatter_final.png (data blue, samples red); numbers: $(DEMO_DIR)/metrics.csv"

bench: deps
	@bash scripts/install-deps.sh --bench
	cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=Release -DSINKHORN_BUILD_BENCHMARKS=ON $(CMAKE_FLAGS)
	cmake --build $(BUILD_DIR) -j $(JOBS)

fuzz:
	JOBS=$(JOBS) bash scripts/fuzz.sh

wheel:
	JOBS=$(JOBS) bash scripts/wheel.sh

test-wheel:
	JOBS=$(JOBS) bash scripts/test-wheel.sh

clean:
	rm -rf $(BUILD_DIR) build-fuzz build-wheel build-pip
