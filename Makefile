# The README's two commands: `make run` (the main job) and `make test` (everything CI checks).
SHELL := /bin/bash
# A failing command inside a pipeline (ctest piped to grep) must fail the target.
.SHELLFLAGS := -o pipefail -ec
PYTHON_BOOT ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
JOBS ?= $(shell nproc)
# The pinned torch is a CPU build on these machines' disk; it goes in before anything that depends on
# it so that no other package can pull an unpinned (CUDA, several GB) build.
TORCH := torch==2.13.0
BUILD_TOOLS := scikit-build-core pybind11 cmake ninja numpy
# One exact version of every package, for every environment made here (requirements/constraints.txt;
# `make lock` refreshes it). Every pip install below goes through PIP_INSTALL.
CONSTRAINTS := requirements/constraints.txt
PIP_INSTALL := $(PIP) install -q -c $(CONSTRAINTS)
# PyLate 1.6.0 goes in with --no-deps (it would pull fast-plaid and with it another torch); these are the
# pip check lines that this leaves, and the only ones `make pip-check` accepts.
PIP_CHECK_ALLOWED := requirements/pip-check-allowed.txt
# The wheels and their build trees (the wheels section below; test-cpp and test-arm depend on them).
WHEELHOUSE := build/wheels
WHEEL_TREE := build/wheel

.PHONY: test-lane-arm test-lane-x86 test-wheel-x86_64 test-wheel-aarch64 test-arm-demo arm-run arm-env test-arm-py wheels test-wheels bench-peers pip-check lock run test test-asan fuzz fuzz-native apt-clang typecheck test-crash-long soak test-cpp test-arm test-py bench install deps-test apt-arm apt-llvm arm-model clean

$(VENV)/.base: $(CONSTRAINTS)
	test -x $(PY) || $(PYTHON_BOOT) -m venv $(VENV)
	$(PIP_INSTALL) $(TORCH)
	$(PIP_INSTALL) $(BUILD_TOOLS)
	touch $@

# The package itself, rebuilt incrementally in build/ (scikit-build-core's build-dir).
install: $(VENV)/.base
	$(PIP_INSTALL) --no-build-isolation --no-deps .

$(VENV)/.test-deps: $(VENV)/.base pyproject.toml $(CONSTRAINTS)
	# Ray for the sharded index's cluster tests: the `distributed` extra (14 s here, no torch change).
	$(PIP_INSTALL) --no-build-isolation '.[test,distributed]'
	# PyLate 1.6.0 would pull fast-plaid and with it another torch: no deps, its real needs are above.
	$(PIP_INSTALL) --no-deps pylate==1.6.0
	# colbert-ai's own codec is the reference the codec tests compare bytes with; it keeps torch as is.
	$(PIP_INSTALL) colbert-ai==0.2.22
	$(PY) -c "import torch, sys; sys.exit(torch.__version__ != '2.13.0+cpu' and 'a dependency replaced the pinned torch')"
	touch $@

deps-test: $(VENV)/.test-deps

# The main job: index the shipped pydocs subset with the offline model, search, compare with BM25.
run: $(VENV)/.base
	$(PIP_INSTALL) --no-build-isolation '.[demo]'
	$(MAKE) pip-check
	$(VENV)/bin/edgecolbert demo

# Two lanes side by side, one per core of a 2-core machine, each running its targets one at a time: the
# aarch64 lane (its environment and wheel, the suites under qemu-user, which runs one emulated process on one
# core, the NEON ctest, the ARM model, then mypy and the native fuzzing build and run) and the x86 lane
# (pytest, the x86_64 wheel and its native ctest, the sanitizer build and runs). The two lanes hold the two job
# slots; one that finishes first hands its slot to the other. Measured on fresh clones (docs/arm.md, "The
# package on aarch64"), the lanes are balanced by moving whole targets between them.
# Every apt package, the venv's wheel tools and the package itself go in before the lanes start: two apt-gets
# at once fail on dpkg's lock, and two pips must not write one venv at once (so the lanes take `install` as
# done: -o install; --output-sync: each target's output in one piece).
test: deps-test install pip-check apt-arm apt-arm-env apt-llvm apt-clang $(VENV)/.wheel-tools
	$(MAKE) --no-print-directory -j2 --output-sync=target test-lane-arm test-lane-x86

test-lane-arm:
	$(MAKE) --no-print-directory -o install test-arm test-wheel-aarch64 arm-model typecheck fuzz-native

test-lane-x86:
	$(MAKE) --no-print-directory -o install test-py test-cpp test-wheel-x86_64 test-asan

# The peer comparison from the repository alone (BENCHMARKS.md "Index", docs/peers.md): pinned peer venvs
# under build/peers, the shared data, every index, every row (bench/peers/run_all.py). PyLate's PLAID runs in
# a venv layered over .venv (its pylate 1.6.0 and torch 2.13.0) plus what its bundled ColBERT code imports;
# fast-plaid wheels are tied to one torch release each, so it gets its own venv (torch 2.11.0, ~5 GB).
# PyLate's 20,000-document build takes ~30 min at 1 thread. PEERS_ARGS="--docs 2000 --small 500" for a check.
PEERS := build/peers
PEERS_ARGS ?= --rounds 2
$(PEERS)/venv-pylate/.ok: $(VENV)/.test-deps requirements/peers-pylate.txt
	rm -rf $(PEERS)/venv-pylate && $(PYTHON_BOOT) -m venv $(PEERS)/venv-pylate
	$(PY) -c "import sysconfig; print(sysconfig.get_paths()['purelib'])" > $$($(PEERS)/venv-pylate/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")/zz_project.pth
	$(PEERS)/venv-pylate/bin/pip install -q --no-deps -r requirements/peers-pylate.txt
	$(PEERS)/venv-pylate/bin/python -c "import torch, pylate, fastkmeans, psutil, edgecolbert_native; assert torch.__version__ == '2.13.0+cpu'"
	touch $@
$(PEERS)/venv-fastplaid/.ok: requirements/peers-fastplaid.txt
	rm -rf $(PEERS)/venv-fastplaid && $(PYTHON_BOOT) -m venv $(PEERS)/venv-fastplaid
	$(PEERS)/venv-fastplaid/bin/pip install -q --no-deps -r requirements/peers-fastplaid.txt
	$(PEERS)/venv-fastplaid/bin/python -c "import torch, fast_plaid; assert torch.__version__.startswith('2.11.0')"
	touch $@
bench-peers: install $(PEERS)/venv-pylate/.ok $(PEERS)/venv-fastplaid/.ok
	$(PY) bench/peers/run_all.py --out $(PEERS) --pylate-python $(PEERS)/venv-pylate/bin/python \
	  --fastplaid-python $(PEERS)/venv-fastplaid/bin/python $(PEERS_ARGS)

# pip check in .venv: nothing but the requirements PyLate's --no-deps install leaves out.
pip-check:
	@out=$$($(PY) -m pip check 2>&1 || true); \
	bad=$$(printf '%s\n' "$$out" | grep -vxF -f $(PIP_CHECK_ALLOWED) | grep -vx 'No broken requirements found.' || true); \
	if [ -n "$$bad" ]; then echo "pip check: broken requirements beyond $(PIP_CHECK_ALLOWED):"; echo "$$bad"; exit 1; fi; \
	echo "pip check: ok (only the lines in $(PIP_CHECK_ALLOWED), if any)"

# Refresh the pins: the newest versions that the top-level requirements allow, resolved in a scratch
# venv and frozen into $(CONSTRAINTS). Then run `make test` (and `make run`) on a fresh clone.
LOCK_VENV := build/lock-venv
lock:
	rm -rf $(LOCK_VENV) && $(PYTHON_BOOT) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/pip install -q $(TORCH)
	$(LOCK_VENV)/bin/pip install -q $(BUILD_TOOLS) ninja==1.11.1.4 ujson==5.12.0   # the two pins PyLate 1.6.0 asks for
	$(LOCK_VENV)/bin/pip install -q --no-build-isolation '.[test,demo,bench,distributed]' colbert-ai==0.2.22
	$(LOCK_VENV)/bin/pip install -q --no-deps pylate==1.6.0
	$(LOCK_VENV)/bin/pip install -q $(AUDITWHEEL)
	{ sed -n '/^#/p' $(CONSTRAINTS); $(LOCK_VENV)/bin/pip freeze --all | grep -v '^edgecolbert'; } > $(CONSTRAINTS).new
	mv $(CONSTRAINTS).new $(CONSTRAINTS)
	$(PY) tests/test_arm_pins.py --sync
	@echo "$(CONSTRAINTS) refreshed and its versions carried into $(ARM_CONSTRAINTS): review the diff, then run"
	@echo "make run and make test on a fresh clone"

# The C++ kernel tests, natively and optimised (under AddressSanitizer + UBSan: test-asan): the x86_64
# wheel's build tree holds them (WHEEL_BUILD), so the release core is compiled once for both.
test-cpp: $(WHEELHOUSE)/.x86_64
	ctest --test-dir $(WHEEL_TREE)-x86_64 --output-on-failure

apt-arm:
	@if ! command -v aarch64-linux-gnu-g++ >/dev/null || ! command -v qemu-aarch64 >/dev/null; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq g++-aarch64-linux-gnu qemu-user >/dev/null; \
	fi

# NEON paths: cross-compiled for aarch64 and run under qemu-user with the cross toolchain's sysroot, on
# emulated CPU models whose features differ (what qemu 7.2 gives each, as HWCAP reports it):
#   max          fp16, dotprod, bf16, i8mm: every NEON variant runs; neon_i8mm is chosen;
#   cortex-a72   none of them (Raspberry Pi 4 class): the plain neon variant and its scalar int8 fallback;
#   neoverse-n1  fp16 and dotprod only (Graviton2 class): neon_dotprod is chosen (dispatch and int8 cases).
# test_dispatch.cpp prints the features, the runnable variants and the chosen one; each run is checked
# for the variant it must choose and for the int8 kernels that must have run.
# The kernel tests are the ones the aarch64 wheel's build tree holds (WHEEL_BUILD): one cross compile of the core.
ARM_TREE = $(WHEEL_TREE)-aarch64
ARM_RUN = qemu-aarch64 -L /usr/aarch64-linux-gnu $(ARM_TREE)/ec_tests
ARM_SHOW = grep -E "tested|features:|available:|chosen|PASS|FAIL|passed|failed|Test \#"
test-arm: apt-arm test-arm-py $(WHEELHOUSE)/.aarch64
	@echo "== QEMU_CPU=max"
	QEMU_CPU=max ctest --test-dir $(ARM_TREE) --output-on-failure -V | tee $(ARM_TREE)/qemu-max.log | $(ARM_SHOW)
	grep -q "variant chosen: neon_i8mm (fast int8 centroid scores: yes)" $(ARM_TREE)/qemu-max.log
	for v in neon_dotprod neon_bf16 neon_i8mm; do grep -q "tested int8 block kernel $$v (dot-product instructions)" $(ARM_TREE)/qemu-max.log || { echo "int8 kernel of $$v did not run under max"; exit 1; }; done
	@echo "== QEMU_CPU=cortex-a72"
	QEMU_CPU=cortex-a72 ctest --test-dir $(ARM_TREE) --output-on-failure -V | tee $(ARM_TREE)/qemu-a72.log | $(ARM_SHOW)
	grep -q "variant chosen: neon (fast int8 centroid scores: no)" $(ARM_TREE)/qemu-a72.log
	grep -q "tested int8 block kernel neon (scalar)" $(ARM_TREE)/qemu-a72.log
	! grep -E "features:.*(asimddp|bf16|i8mm)|tested .*neon_(dotprod|bf16|i8mm)" $(ARM_TREE)/qemu-a72.log
	@echo "== QEMU_CPU=neoverse-n1"
	QEMU_CPU=neoverse-n1 $(ARM_RUN) dispatch int8 | tee $(ARM_TREE)/qemu-n1.log | $(ARM_SHOW)
	grep -q "variant chosen: neon_dotprod (fast int8 centroid scores: yes)" $(ARM_TREE)/qemu-n1.log

# llvm-mca from Debian's llvm-19 for the ARM speed model.
apt-llvm:
	@if ! command -v llvm-mca-19 >/dev/null; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq llvm-19 >/dev/null; \
	fi

# A MODEL of the NEON kernels' speed on ARM cores (never measured on ARM hardware): llvm-mca on each
# kernel's inner loop, cross-compiled to assembly, beside the x86 tiles on Zen 4 (docs/arm.md). Fails
# when a kernel x CPU row is missing; about a minute.
arm-model: apt-arm apt-llvm
	$(PYTHON_BOOT) bench/arm_model.py

typecheck: install
	$(PY) -m mypy python/edgecolbert_native

test-py: install
	$(PY) -m pytest -q tests

bench: install
	$(PIP_INSTALL) --no-build-isolation '.[bench]'
	$(MAKE) pip-check
	$(PY) -m pytest -q bench -o python_files="bench_*.py" --benchmark-only --benchmark-columns=min,median,max,iqr
	$(VENV)/bin/edgecolbert bench

# One build with AddressSanitizer + UBSan (the core compiled once for both): the C++ kernel tests, then the
# Python extension running the kernel and index suites. The
# interpreter is not instrumented, so the ASan runtime is preloaded (with libstdc++, whose __cxa_throw
# ASan must find when the extension throws); leak detection is off because CPython keeps its objects.
# Sanitizer reports go to files: a report on stderr lands in pytest's capture of the running test and
# is lost when the sanitizer ends the process (UBSan's halt_on_error exits with status 1: dots, then
# nothing); the files are printed when pytest fails. -g1: line tables only, which is all a report's stack needs
# (file:line); full -g made the build ~13% slower (csrc/bindings/plaid.cpp under ASan+UBSan: 52 s, 45 s with -g1).
ASAN_PRELOAD = $(shell gcc -print-file-name=libasan.so) $(shell gcc -print-file-name=libstdc++.so)
SAN_LOGS = $(abspath build/sanitizer-logs)
test-asan: deps-test
	cmake -S . -B build/asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO='-O2 -g1 -DNDEBUG' -DEDGECOLBERT_SANITIZE=ON -DEDGECOLBERT_BUILD_TESTS=ON -DEDGECOLBERT_BUILD_CUDA=OFF -DPython_EXECUTABLE=$(abspath $(PY)) -Dpybind11_DIR=$$($(PY) -m pybind11 --cmakedir) >/dev/null
	cmake --build build/asan --target ec_tests _native -j $(JOBS)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ctest --test-dir build/asan --output-on-failure
	rm -rf build/asan-pkg && mkdir -p build/asan-pkg && cp -r python/edgecolbert_native build/asan-pkg/ && cp build/asan/_native*.so build/asan-pkg/edgecolbert_native/
	rm -rf $(SAN_LOGS) && mkdir -p $(SAN_LOGS)
	LD_PRELOAD="$(ASAN_PRELOAD)" ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:log_path=$(SAN_LOGS)/asan \
	  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:log_path=$(SAN_LOGS)/ubsan \
	  PYTHONPATH=build/asan-pkg EDGECOLBERT_KILLS=10 EDGECOLBERT_FUZZ_EXAMPLES=60 $(PY) -m pytest -q -p no:cacheprovider tests/test_maxsim.py tests/test_maxsim_errors.py \
	  tests/test_codec.py tests/test_centroids.py tests/test_index.py tests/test_index_plaid.py tests/test_index_colbert.py tests/test_untrusted_input.py \
	  tests/test_reliability_fuzz.py \
	  || { status=$$?; for f in $(SAN_LOGS)/*; do if [ -e "$$f" ]; then echo "== $$f"; cat "$$f"; fi; done; exit $$status; }

# Coverage-guided fuzzing of the C++ binding layer with native coverage: the extension built by clang
# with -fsanitize=address,fuzzer-no-link (EDGECOLBERT_FUZZ_COVERAGE), run under atheris's libFuzzer + ASan
# runtime, so that libFuzzer is guided by the C++ branches (and the Python wrappers'), not only Python's.
# Fails on any finding, and when the extension's counters were not loaded (no native guidance).
FUZZ_NATIVE_SECONDS ?= 30
apt-clang:
	@if ! command -v clang++ >/dev/null; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq clang >/dev/null; \
	fi

fuzz-native: deps-test apt-clang
	cmake -S . -B build/py-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DEDGECOLBERT_FUZZ_COVERAGE=ON -DEDGECOLBERT_BUILD_CUDA=OFF -DPython_EXECUTABLE=$(abspath $(PY)) -Dpybind11_DIR=$$($(PY) -m pybind11 --cmakedir) >/dev/null
	cmake --build build/py-fuzz --target _native -j $(JOBS)
	rm -rf build/fuzz-pkg && mkdir -p build/fuzz-pkg && cp -r python/edgecolbert_native build/fuzz-pkg/ && cp build/py-fuzz/_native*.so build/fuzz-pkg/edgecolbert_native/
	LD_PRELOAD="$$($(PY) -c 'import atheris; print(atheris.path())')/asan_with_fuzzer.so" ASAN_OPTIONS=detect_leaks=0 \
	  PYTHONPATH=build/fuzz-pkg $(PY) tests/fuzz/fuzz_bindings.py -max_total_time=$(FUZZ_NATIVE_SECONDS) -print_final_stats=1 -artifact_prefix=build/ \
	  > build/fuzz-native.log 2>&1 || { tail -60 build/fuzz-native.log; exit 1; }
	@grep -E "inline 8-bit counters|DONE|stat::number_of_executed_units" build/fuzz-native.log
	@grep -qE "Loaded [0-9]+ modules +\(([0-9]{4,}) inline 8-bit counters" build/fuzz-native.log || { echo "no native coverage counters were loaded"; exit 1; }

# Longer reliability runs than `make test` does: 1,000 SIGKILLed writers, a 2-minute soak.
test-crash-long: install
	EDGECOLBERT_KILLS=1000 $(PY) -m pytest -q -s tests/test_index.py -k sigkill

fuzz: install
	EDGECOLBERT_FUZZ_SECONDS=600 EDGECOLBERT_FUZZ_EXAMPLES=5000 $(PY) -m pytest -q -s tests/test_fuzz.py tests/test_reliability_fuzz.py
	$(MAKE) fuzz-native FUZZ_NATIVE_SECONDS=600

soak: install
	EDGECOLBERT_SOAK_SECONDS=120 $(PY) -m pytest -q -s tests/test_soak.py

# ------------------------------------------------------------------------------------------- wheels
# `make wheels`: what users install. Linux x86_64 and aarch64 wheels, every ISA path of the architecture in
# each, the CUDA module left out (it needs nvcc to build and a GPU to run; wheels must build on any host),
# libstdc++ linked statically (EDGECOLBERT_STATIC_CXX_RUNTIME, CMakeLists.txt says why), repaired and tagged
# by auditwheel with $(MANYLINUX): the oldest tag this toolchain allows (Debian bookworm's glibc 2.36 binds
# pthread_create and friends to GLIBC_2.34; an older tag needs an older glibc to build against), and the
# sdist. The aarch64 wheel is cross-compiled with the toolchain file against the CPython headers of Debian's
# libpython3.11-dev:arm64, extracted without installing (docs/arm.md: why cross and not native under qemu).
AUDITWHEEL := auditwheel==6.8.2
MANYLINUX := manylinux_2_34
PKG_SOURCES = CMakeLists.txt pyproject.toml README.md $(shell find csrc python third_party -type f ! -name '*.pyc' ! -path '*/__pycache__/*')
# auditwheel picks the most compatible tag it can prove; --patcher none refuses to graft any library into
# the wheel (there must be none to graft), and the check after it holds the tag to the one the README gives.
AUDITWHEEL_REPAIR = $(VENV)/bin/auditwheel repair --plat auto --patcher none -w $(WHEELHOUSE)
WHEEL_TAG_CHECK = @ls $(WHEELHOUSE)/edgecolbert_native-*-$(MANYLINUX)_$(1).whl >/dev/null 2>&1 || { \
  echo "auditwheel did not tag the wheel $(MANYLINUX):"; ls $(WHEELHOUSE); exit 1; }
# The wheels' build trees ($(WHEEL_TREE)-<arch>) also hold the C++ kernel tests (ec_tests: built beside
# _native, never installed into the wheel), which test-cpp and test-arm run: each architecture's core is
# compiled once for both.
WHEEL_BUILD = $(PIP) wheel -q --no-build-isolation --no-deps -C cmake.define.EDGECOLBERT_BUILD_CUDA=OFF \
  -C cmake.define.EDGECOLBERT_STATIC_CXX_RUNTIME=ON -C cmake.define.EDGECOLBERT_BUILD_TESTS=ON
DEBIAN_MIRROR ?= http://deb.debian.org/debian
ARM_PYHEADERS := build/arm-pyheaders
# Refuses to go on while anything is mounted below build/ (an interrupted mmdebstrap can leave /proc or
# /dev mounted in its root): rm -rf must never walk into them.
ARM_NO_MOUNTS = @if grep -q " $(abspath build)/" /proc/mounts; then \
  echo "file systems are still mounted under $(abspath build) (an interrupted run?); unmount them first:"; \
  grep " $(abspath build)/" /proc/mounts; exit 1; fi

$(VENV)/.wheel-tools: $(VENV)/.base $(CONSTRAINTS)
	$(PIP_INSTALL) $(AUDITWHEEL)
	touch $@

$(WHEELHOUSE)/.x86_64: $(VENV)/.wheel-tools $(PKG_SOURCES)
	rm -rf build/wheel-raw/x86_64 && mkdir -p $(WHEELHOUSE)
	$(WHEEL_BUILD) -C build-dir=$(WHEEL_TREE)-x86_64 -w build/wheel-raw/x86_64 .
	rm -f $(WHEELHOUSE)/edgecolbert_native-*_x86_64.whl
	$(AUDITWHEEL_REPAIR) build/wheel-raw/x86_64/*.whl
	$(call WHEEL_TAG_CHECK,x86_64)
	touch $@

$(ARM_PYHEADERS)/.ok: | apt-arm-env
	rm -rf $(ARM_PYHEADERS) && mkdir -p $(ARM_PYHEADERS)
	mmdebstrap --quiet --mode=root --variant=extract --arch=arm64 --include=libpython3.11-dev bookworm \
	  $(ARM_PYHEADERS)/debs $(DEBIAN_MIRROR)
	cp -r $(ARM_PYHEADERS)/debs/usr/include/python3.11 $(ARM_PYHEADERS)/include
	# Debian's pyconfig.h picks the architecture's copy by predefined macros; the module needs only that one.
	cp $(ARM_PYHEADERS)/debs/usr/include/aarch64-linux-gnu/python3.11/pyconfig.h $(ARM_PYHEADERS)/include/
	rm -rf --one-file-system $(ARM_PYHEADERS)/debs
	touch $@

$(WHEELHOUSE)/.aarch64: $(VENV)/.wheel-tools $(ARM_PYHEADERS)/.ok $(PKG_SOURCES) | apt-arm
	rm -rf build/wheel-raw/aarch64 && mkdir -p $(WHEELHOUSE)
	_PYTHON_HOST_PLATFORM=linux-aarch64 $(WHEEL_BUILD) -C build-dir=$(WHEEL_TREE)-aarch64 -w build/wheel-raw/aarch64 \
	  -C cmake.python-hints=false -C cmake.define.CMAKE_TOOLCHAIN_FILE=$(abspath third_party/toolchains/aarch64-linux-gnu.cmake) \
	  -C cmake.define.Python_INCLUDE_DIR=$(abspath $(ARM_PYHEADERS)/include) \
	  -C cmake.define.PYTHON_MODULE_EXTENSION=.cpython-311-aarch64-linux-gnu.so .
	rm -f $(WHEELHOUSE)/edgecolbert_native-*_aarch64.whl
	$(AUDITWHEEL_REPAIR) build/wheel-raw/aarch64/*.whl
	$(call WHEEL_TAG_CHECK,aarch64)
	touch $@

$(WHEELHOUSE)/.sdist: $(VENV)/.base $(PKG_SOURCES)
	rm -f $(WHEELHOUSE)/edgecolbert_native-*.tar.gz && mkdir -p $(WHEELHOUSE)
	$(PY) -c "from scikit_build_core.build import build_sdist; print(build_sdist('$(WHEELHOUSE)'))"
	touch $@

wheels: $(WHEELHOUSE)/.x86_64 $(WHEELHOUSE)/.aarch64 $(WHEELHOUSE)/.sdist
	@for w in $(WHEELHOUSE)/*.whl; do $(VENV)/bin/auditwheel show "$$w" | tr '\n' ' ' | grep -oE '^[^ ]+|platform tag: "[^"]+"' | tr '\n' ' '; echo; done
	@ls -l $(WHEELHOUSE)

# Each wheel in a clean venv on its own architecture, with no compiler on PATH, through pip from the wheel
# files alone (numpy comes as a wheel from PyPI, downloaded on the host): import, info(), MaxSim against
# numpy, a small Index build and search (tests/wheel_smoke.py). aarch64: in the root, under qemu (max).
WHEEL_TEST := build/wheel-test
test-wheels: test-wheel-x86_64 test-wheel-aarch64

test-wheel-x86_64: $(WHEELHOUSE)/.x86_64
	rm -rf $(WHEEL_TEST)/x86_64 && mkdir -p $(WHEEL_TEST)/x86_64/links
	$(PIP) download -q --no-deps --only-binary=:all: -d $(WHEEL_TEST)/x86_64/links -c $(CONSTRAINTS) numpy
	cp $(WHEELHOUSE)/edgecolbert_native-*_x86_64.whl $(WHEEL_TEST)/x86_64/links/
	$(PYTHON_BOOT) -m venv $(WHEEL_TEST)/x86_64/venv
	env -i HOME=$$HOME PATH=$(abspath $(WHEEL_TEST)/x86_64/venv/bin) /bin/sh -c \
	  '! command -v cc && ! command -v c++ && ! command -v gcc && \
	   python -m pip install -q --no-index --find-links $(WHEEL_TEST)/x86_64/links edgecolbert-native && \
	   cd $(WHEEL_TEST)/x86_64 && python $(abspath tests/wheel_smoke.py)'

# (with the sdist, so that make test builds every artifact `make wheels` makes)
test-wheel-aarch64: $(WHEELHOUSE)/.aarch64 $(WHEELHOUSE)/.sdist arm-env
	rm -rf $(WHEEL_TEST)/aarch64 && mkdir -p $(WHEEL_TEST)/aarch64/links
	$(PIP) download -q $(ARM_PIP_FLAGS) -d $(WHEEL_TEST)/aarch64/links -c $(ARM_CONSTRAINTS) numpy
	cp $(WHEELHOUSE)/edgecolbert_native-*_aarch64.whl $(WHEEL_TEST)/aarch64/links/
	$(ARM_ENV_RUN) 'python3 -m venv --without-pip $(WHEEL_TEST)/aarch64/venv && \
	   PATH=$(abspath $(WHEEL_TEST))/aarch64/venv/bin:/usr/bin:/bin && ! command -v cc && ! command -v gcc && \
	   /opt/venv/bin/python -m pip --python $(WHEEL_TEST)/aarch64/venv/bin/python install -q --no-index \
	     --find-links $(WHEEL_TEST)/aarch64/links edgecolbert-native && \
	   cd $(WHEEL_TEST)/aarch64 && python $(abspath tests/wheel_smoke.py)'

# ------------------------------------------------------------------- aarch64: the package end to end
# build/arm-env/root: an aarch64 Debian bookworm root made by mmdebstrap from Debian's packages, run by
# qemu-user-static through binfmt_misc, with a venv at /opt/venv holding requirements/constraints-aarch64.txt
# and the aarch64 wheel above. The host's pip installs the aarch64 wheels straight into the venv
# (--platform/--target: no emulation; docs/arm.md has the timings). A second run reuses all of it.
ARM_ENV := build/arm-env
ARM_ROOT := $(ARM_ENV)/root
ARM_SITE := $(ARM_ROOT)/opt/venv/lib/python3.11/site-packages
ARM_CONSTRAINTS := requirements/constraints-aarch64.txt
ARM_PIP_CHECK_ALLOWED := requirements/pip-check-allowed-aarch64.txt
ARM_PIP_FLAGS := --no-deps --only-binary=:all: --python-version 3.11 --implementation cp --abi cp311 \
  --platform manylinux2014_aarch64 $(foreach v,28 27 26 25 24 23 22 21 20 19 18 17,--platform manylinux_2_$(v)_aarch64)
ARM_ENV_RUN := tools/arm/run.sh $(ARM_ROOT)

apt-arm-env: apt-arm
	@if ! command -v mmdebstrap >/dev/null || ! command -v qemu-aarch64-static >/dev/null || ! command -v arch-test >/dev/null; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends mmdebstrap qemu-user-static arch-test >/dev/null; \
	fi

# aarch64 executables run through qemu-aarch64-static, registered with the F flag (the kernel keeps the
# interpreter open, so it works inside the root, which has no x86 qemu). An entry without F is replaced.
binfmt-arm: apt-arm-env
	@SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then $$SUDO mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc; fi; \
	if ! grep -qs '^flags:.*F' /proc/sys/fs/binfmt_misc/qemu-aarch64; then \
	  if [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then echo -1 | $$SUDO tee /proc/sys/fs/binfmt_misc/qemu-aarch64 >/dev/null; fi; \
	  $$SUDO sh -c 'cat /usr/lib/binfmt.d/qemu-aarch64.conf > /proc/sys/fs/binfmt_misc/register'; \
	  echo "binfmt_misc: qemu-aarch64 registered ($$(grep interpreter /proc/sys/fs/binfmt_misc/qemu-aarch64))"; \
	fi

$(ARM_ROOT)/.root: | binfmt-arm
	$(ARM_NO_MOUNTS)
	rm -rf --one-file-system $(ARM_ROOT) && mkdir -p $(ARM_ENV)
	mmdebstrap --quiet --mode=root --variant=minbase --arch=arm64 --include=python3 \
	  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
	  --dpkgopt='path-exclude=/usr/share/locale/*' bookworm $(ARM_ROOT) $(DEBIAN_MIRROR)
	chroot $(ARM_ROOT) /usr/bin/env -i PATH=/usr/bin:/bin python3 -m venv --without-pip /opt/venv
	touch $@

$(ARM_ENV)/.deps: $(ARM_ROOT)/.root $(ARM_CONSTRAINTS) $(ARM_PIP_CHECK_ALLOWED) | $(VENV)/.base
	rm -rf --one-file-system $(ARM_SITE) $(ARM_ENV)/.pkg && mkdir -p $(ARM_SITE)
	$(PIP) install -q $(ARM_PIP_FLAGS) --target $(ARM_SITE) -r $(ARM_CONSTRAINTS)
	# pip --target writes console scripts to $(ARM_SITE)/bin with the host's interpreter in their first line.
	for f in $(ARM_SITE)/bin/*; do sed -i '1s|^#!.*python.*$$|#!/opt/venv/bin/python|' "$$f"; mv "$$f" $(ARM_ROOT)/opt/venv/bin/; done
	rmdir $(ARM_SITE)/bin
	$(ARM_ENV_RUN) 'python -c "import torch, sys; sys.exit(torch.__version__.split(\"+\")[0] != \"2.13.0\" and \"not the pinned torch\")"'
	@out=$$($(ARM_ENV_RUN) 'python -m pip check' 2>&1 || true); \
	bad=$$(printf '%s\n' "$$out" | grep -vxF -f $(ARM_PIP_CHECK_ALLOWED) | grep -vx 'No broken requirements found.' || true); \
	if [ -n "$$bad" ]; then echo "pip check in the aarch64 venv: broken requirements beyond $(ARM_PIP_CHECK_ALLOWED):"; echo "$$bad"; exit 1; fi
	touch $@

$(ARM_ENV)/.pkg: $(ARM_ENV)/.deps $(WHEELHOUSE)/.aarch64
	$(ARM_ENV_RUN) 'python -m pip install -q --no-deps --no-index --force-reinstall $(WHEELHOUSE)/edgecolbert_native-*_aarch64.whl'
	touch $@

arm-env: $(ARM_ENV)/.pkg

# The package on aarch64, in the root under qemu, once per emulated CPU model: max (every extension qemu
# has) and cortex-a72 (Armv8.0-A: no dot product, fp16 or bf16, so the fallbacks run). Under max: the kernel,
# codec, centroid, index and input-validation suites with EDGECOLBERT_TEST_EMULATED=1 (smaller sizes where a
# test's cost is its size; tests/emulation.py), then tests/aarch64_checks.py: the NEON path info() names, the
# encoder on the 17m-shaped ModernBERT and a BERT checkpoint against the stored x86_64 outputs, and `edgecolbert
# demo` on a pydocs subset against the stored x86_64 MRR@10. Under cortex-a72, the suites whose code paths the
# CPU's features choose (ARM_PY_ISA_SUITES: the kernels, codec, centroids, the search's stages, the encoder);
# the index's storage, processes and locks and the argument checks run the same code on every CPU model, and
# max runs them. The checkpoints are made here, on x86, by the test venv.
ARM_CPUS ?= max cortex-a72
ARM_REF := build/arm-ref
ARM_PY_SUITES := tests/test_maxsim.py tests/test_maxsim_errors.py tests/test_codec.py tests/test_centroids.py \
  tests/test_index.py tests/test_index_plaid.py tests/test_untrusted_input.py tests/aarch64_checks.py
ARM_PY_ISA_SUITES := tests/test_maxsim.py tests/test_codec.py tests/test_centroids.py tests/test_index_plaid.py \
  tests/aarch64_checks.py
$(ARM_REF)/.ok: $(VENV)/.test-deps tests/encoder_helpers.py tests/arm_reference.py
	rm -rf $(ARM_REF) && $(PY) tests/arm_reference.py checkpoints $(ARM_REF) >/dev/null
	touch $@

test-arm-py: arm-env $(ARM_REF)/.ok
	for cpu in $(ARM_CPUS); do \
	  case $$cpu in max) suites="$(ARM_PY_SUITES)";; *) suites="$(ARM_PY_ISA_SUITES)";; esac; \
	  echo "== aarch64 under qemu, QEMU_CPU=$$cpu"; \
	  QEMU_CPU=$$cpu $(ARM_ENV_RUN) 'EDGECOLBERT_TEST_EMULATED=1 EDGECOLBERT_ARM_CHECKPOINTS=$(ARM_REF) \
	    python -m pytest -q -p no:cacheprovider -m "not slow" --durations=15 '"$$suites"; \
	done

# The main job on aarch64: `edgecolbert demo --passages 60` under QEMU_CPU=max against the stored x86_64
# MRR@10 (tests/aarch64_checks.py). Not in make test: its encoding takes ~20 min under emulation.
test-arm-demo: arm-env $(ARM_REF)/.ok
	QEMU_CPU=max $(ARM_ENV_RUN) 'EDGECOLBERT_ARM_DEMO=1 EDGECOLBERT_ARM_CHECKPOINTS=$(ARM_REF) \
	  python -m pytest -q -p no:cacheprovider tests/aarch64_checks.py -k demo'

# make arm-run CMD='python my_check.py' [QEMU_CPU=cortex-a72]: one command in that environment, from here.
arm-run: arm-env
	@if [ -z "$$CMD" ]; then echo "usage: make arm-run CMD='python my_check.py' [QEMU_CPU=max|cortex-a72|...]"; exit 2; fi
	$(ARM_ENV_RUN) "$$CMD"

clean:
	$(ARM_NO_MOUNTS)
	rm -rf --one-file-system build $(VENV)
