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

.PHONY: bench-peers pip-check lock run test test-asan fuzz fuzz-native apt-clang typecheck test-crash-long soak test-cpp test-arm test-py bench install deps-test apt-arm apt-llvm arm-model clean

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

test: deps-test install pip-check test-cpp test-arm arm-model typecheck test-py test-asan fuzz-native

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
	{ sed -n '/^#/p' $(CONSTRAINTS); $(LOCK_VENV)/bin/pip freeze --all | grep -v '^edgecolbert'; } > $(CONSTRAINTS).new
	mv $(CONSTRAINTS).new $(CONSTRAINTS)
	@echo "$(CONSTRAINTS) refreshed: review the diff, then run make run and make test on a fresh clone"

# The C++ kernel tests, natively: once optimised, once under AddressSanitizer + UBSan.
test-cpp:
	cmake -S . -B build/cpp -G Ninja -DCMAKE_BUILD_TYPE=Release -DEDGECOLBERT_BUILD_TESTS=ON -DEDGECOLBERT_BUILD_PYTHON=OFF >/dev/null
	cmake --build build/cpp -j $(JOBS)
	ctest --test-dir build/cpp --output-on-failure
	cmake -S . -B build/cpp-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEDGECOLBERT_BUILD_TESTS=ON -DEDGECOLBERT_BUILD_PYTHON=OFF -DEDGECOLBERT_SANITIZE=ON >/dev/null
	cmake --build build/cpp-asan -j $(JOBS)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ctest --test-dir build/cpp-asan --output-on-failure

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
ARM_RUN = qemu-aarch64 -L /usr/aarch64-linux-gnu build/arm/ec_tests
ARM_SHOW = grep -E "tested|features:|available:|chosen|PASS|FAIL|passed|failed|Test \#"
test-arm: apt-arm
	cmake -S . -B build/arm -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_TOOLCHAIN_FILE=third_party/toolchains/aarch64-linux-gnu.cmake -DEDGECOLBERT_BUILD_TESTS=ON -DEDGECOLBERT_BUILD_PYTHON=OFF >/dev/null
	cmake --build build/arm -j $(JOBS)
	@echo "== QEMU_CPU=max"
	QEMU_CPU=max ctest --test-dir build/arm --output-on-failure -V | tee build/arm/qemu-max.log | $(ARM_SHOW)
	grep -q "variant chosen: neon_i8mm (fast int8 centroid scores: yes)" build/arm/qemu-max.log
	for v in neon_dotprod neon_bf16 neon_i8mm; do grep -q "tested int8 block kernel $$v (dot-product instructions)" build/arm/qemu-max.log || { echo "int8 kernel of $$v did not run under max"; exit 1; }; done
	@echo "== QEMU_CPU=cortex-a72"
	QEMU_CPU=cortex-a72 ctest --test-dir build/arm --output-on-failure -V | tee build/arm/qemu-a72.log | $(ARM_SHOW)
	grep -q "variant chosen: neon (fast int8 centroid scores: no)" build/arm/qemu-a72.log
	grep -q "tested int8 block kernel neon (scalar)" build/arm/qemu-a72.log
	! grep -E "features:.*(asimddp|bf16|i8mm)|tested .*neon_(dotprod|bf16|i8mm)" build/arm/qemu-a72.log
	@echo "== QEMU_CPU=neoverse-n1"
	QEMU_CPU=neoverse-n1 $(ARM_RUN) dispatch int8 | tee build/arm/qemu-n1.log | $(ARM_SHOW)
	grep -q "variant chosen: neon_dotprod (fast int8 centroid scores: yes)" build/arm/qemu-n1.log

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

# The Python extension built with AddressSanitizer + UBSan, running the kernel and index suites. The
# interpreter is not instrumented, so the ASan runtime is preloaded (with libstdc++, whose __cxa_throw
# ASan must find when the extension throws); leak detection is off because CPython keeps its objects.
# Sanitizer reports go to files: a report on stderr lands in pytest's capture of the running test and
# is lost when the sanitizer ends the process (UBSan's halt_on_error exits with status 1: dots, then
# nothing); the files are printed when pytest fails.
ASAN_PRELOAD = $(shell gcc -print-file-name=libasan.so) $(shell gcc -print-file-name=libstdc++.so)
SAN_LOGS = $(abspath build/sanitizer-logs)
test-asan: deps-test
	cmake -S . -B build/py-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEDGECOLBERT_SANITIZE=ON -DEDGECOLBERT_BUILD_CUDA=OFF -DPython_EXECUTABLE=$(abspath $(PY)) -Dpybind11_DIR=$$($(PY) -m pybind11 --cmakedir) >/dev/null
	cmake --build build/py-asan --target _native -j $(JOBS)
	rm -rf build/asan-pkg && mkdir -p build/asan-pkg && cp -r python/edgecolbert_native build/asan-pkg/ && cp build/py-asan/_native*.so build/asan-pkg/edgecolbert_native/
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

clean:
	rm -rf build $(VENV)
