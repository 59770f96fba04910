# The two commands of the README:
#   make demo   install, build (release) and run a command tree in the lab
#   make test   install, build (dev: ASan + UBSan) and run every test (CTest)
# Both must run as root: the lab builds network namespaces.
.PHONY: deps deps-lab deps-bench build-package deb install build-release build-dev demo test bench floods fuzz oldkernel clean

JOBS ?= $(shell nproc)

# What each target installs first (scripts/install-deps.sh): building needs
# only the build packages; the demo and the tests add the lab's servers and
# clients; the benchmark adds its peers.
deps:
	./scripts/install-deps.sh build

deps-lab:
	./scripts/install-deps.sh build lab

deps-bench:
	./scripts/install-deps.sh build lab bench

build-release: deps
	cmake --preset release >/dev/null
	cmake --build --preset release -j $(JOBS)

build-dev: deps
	cmake --preset dev >/dev/null
	cmake --build --preset dev -j $(JOBS)

# Installing childflow as a tool: the packager's build (Release, no tests,
# no -Werror), then a .deb, or cmake --install under PREFIX.
PREFIX ?= /usr/local
build-package: deps
	cmake -S . -B build/package -G Ninja -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF \
	  -DCMAKE_INSTALL_PREFIX=/usr >/dev/null
	cmake --build build/package -j $(JOBS)

deb: build-package
	cd build/package && cpack -G DEB

install: build-package
	cmake --install build/package --prefix $(PREFIX)

demo: deps-lab build-release
	./scripts/demo.sh build/release/childflow

test: deps-lab build-dev
	ctest --preset dev -j 1

bench: deps-bench build-release
	./bench/run.sh --childflow build/release/childflow

# The flood tests of `make test` (tests/e2e/flood_*.sh), bigger and longer,
# on the release build, whose RSS the 64 MiB ceiling is for
# (docs/security.md, "Limits"; about 10 minutes). Record the results there.
floods: deps-lab build-release
	for t in syn udp dns stall; do \
	  FLOOD_LONG=1 CHILDFLOW=$(CURDIR)/build/release/childflow CHILDFLOW_SOURCE_DIR=$(CURDIR) \
	    timeout 1800 bash tests/e2e/flood_$$t.sh || exit 1; \
	done

# The engine's end-to-end tests on Debian 12's kernel (6.1) under qemu
# (docs/kernel.md); OLDKERNEL_TESTS picks scripts (default: every engine_*).
oldkernel: build-release
	OLDKERNEL_TIMEOUT=$${OLDKERNEL_TIMEOUT:-5400} tests/oldkernel/oldkernel.sh \
	  tests/oldkernel/guest-engine.sh $(CURDIR)/build/release $(OLDKERNEL_TESTS)

# libFuzzer targets (tests/fuzz/): build them with clang, then run each for
# FUZZ_SECONDS (scripts/fuzz.sh prints executions, new corpus units and
# crashes per target; what they find stays in build/fuzz/).
FUZZ_SECONDS ?= 60
fuzz:
	./scripts/install-deps.sh build fuzz
	cmake --preset fuzz >/dev/null
	cmake --build --preset fuzz -j $(JOBS)
	FUZZ_SECONDS=$(FUZZ_SECONDS) ./scripts/fuzz.sh

clean:
	rm -rf build
