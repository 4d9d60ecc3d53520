# Entry points. Each target installs what is missing, so each works on a fresh Debian machine.
#   make demo   build, then run the main job on built-in data
#   make test   build, then run the whole test suite
#   make build  build/sinkhorn (the command-line tool), the library and the tests
#   make bench  build the kernel benchmarks and install what bench/compare_cpu.py needs
BUILD_DIR ?= build
BUILD_TYPE ?= Release
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all deps configure build test demo bench clean

all: build

deps:
	@bash scripts/install-deps.sh

configure: deps
	cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CMAKE_FLAGS)

build: configure
	cmake --build $(BUILD_DIR) -j $(JOBS)

test: build
	cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS)

demo: build
	./$(BUILD_DIR)/sinkhorn demo --threads $(JOBS)

bench: deps
	@bash scripts/install-deps.sh --bench
	cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=Release -DSINKHORN_BUILD_BENCHMARKS=ON $(CMAKE_FLAGS)
	cmake --build $(BUILD_DIR) -j $(JOBS)

clean:
	rm -rf $(BUILD_DIR)
