# The README's two commands: `make demo` and `make test`. Both set up .venv from scratch
# (Python packages and the native op library) and then run.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.tfcompress-installed
DEMO_DIR := out/demo
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: setup demo test lint clean native-aarch64 pi-check android-jni-check models models-index fuzz runtime-op-versions

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

# What the kit is for, in one report: one `tfcompress compress` command (the int8 recipe: no
# training, so it takes a minute), then every shipped model (models/*.tflite) evaluated through the
# runtime on flowers5 test.txt and put in one table and plot of top-1 against bytes and latency.
demo: setup
	mkdir -p $(DEMO_DIR)
	$(VENV)/bin/tfcompress compress models/flowers_float.keras --recipe int8 -o $(DEMO_DIR)/flowers_int8.tflite --work $(DEMO_DIR)/work --force
	for model in models/*.tflite; do \
		$(VENV)/bin/tfcompress eval $$model --threads 1 --runs 30 --json $(DEMO_DIR)/$$(basename $$model .tflite).json --force || exit 1; \
	done
	$(VENV)/bin/tfcompress report $(DEMO_DIR)/*.json -o $(DEMO_DIR) --force

test: setup
	$(PY) -m pytest -q

# libFuzzer targets over the native ops (converters/fuzz/, needs clang: apt-get install clang),
# FUZZ_SECONDS per target, table in benchmarks/results/fuzz.md; then the whole-file mutation
# benchmark through the runtime (benchmarks/results/fuzz_tflite.md). CI runs FUZZ_SECONDS=30.
FUZZ_SECONDS ?= 600
FUZZ_MUTANTS ?= 400
fuzz: setup
	nice -n 5 $(PY) converters/fuzz/run.py --seconds $(FUZZ_SECONDS) --report benchmarks/results/fuzz.md
	nice -n 5 $(PY) benchmarks/fuzz_tflite.py --mutants $(FUZZ_MUTANTS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# The op library cross-compiled for aarch64 (Raspberry Pi OS, with the NEON kernels).
# Needs: apt-get install g++-aarch64-linux-gnu
CMAKE ?= cmake
native-aarch64:
	$(CMAKE) -S converters -B build/native-aarch64 -DCMAKE_BUILD_TYPE=Release \
		-DCMAKE_TOOLCHAIN_FILE=$(CURDIR)/converters/cmake/aarch64-linux-gnu.cmake
	$(CMAKE) --build build/native-aarch64 --parallel

# The Pi app on aarch64 under qemu-user emulation vs the same app on x86, every models/*.tflite
# on a few flowers5 test images; the record goes to build/pi-check/. Needs: apt-get install
# qemu-user-static. PI_CHECK_ARGS='--images 10' for more images (qemu is slow).
PI_CHECK_ARGS ?= --images 4
pi-check: setup native-aarch64
	$(PY) android_demo/raspberry_pi/tools/pi_check.py --ops-library-aarch64 build/native-aarch64/libtfcompress_ops.so $(PI_CHECK_ARGS)

# The highest builtin op versions each runtime the apps support registers, probed in the runtime
# itself (android_demo/raspberry_pi/tools/probe_op_versions.py): tfcompress/convert/runtimes/*.json,
# which the converter holds every file it writes against (tfcompress.convert.op_versions).
# tflite-runtime 2.14 needs numpy<2, so it gets a venv of its own under build/.
RUNTIME_TABLES := tfcompress/convert/runtimes
runtime-op-versions: setup
	$(PYTHON) -m venv build/tflite-runtime-2.14
	build/tflite-runtime-2.14/bin/pip install --quiet "tflite-runtime==2.14.0" "numpy<2" flatbuffers
	mkdir -p build/schema && cp $(VENV)/lib/python3*/site-packages/ai_edge_litert/schema_py_generated.py build/schema/
	build/tflite-runtime-2.14/bin/python android_demo/raspberry_pi/tools/probe_op_versions.py --schema-dir build/schema \
		-o $(RUNTIME_TABLES)/tflite-runtime-2.14.0.json
	$(PY) android_demo/raspberry_pi/tools/probe_op_versions.py --schema-dir build/schema --runtime ai_edge_litert \
		-o $(RUNTIME_TABLES)/ai-edge-litert-$$($(PY) -c 'import ai_edge_litert; print(ai_edge_litert.__version__)').json

# The Android native part (JNI library + op library) cross-compiled with Debian's GCC for
# arm64-v8a and armeabi-v7a, and the kernel check run under qemu-user. Not the NDK: the
# APK's libraries need the Android NDK (Gradle). Needs: apt-get install
# g++-aarch64-linux-gnu g++-arm-linux-gnueabihf qemu-user-static, and a JDK (jni.h).
android-jni-check:
	sh android_demo/android/check_jni.sh arm64-v8a armeabi-v7a

# Rebuild every shipped model in dependency order with the commands their cards record
# (scripts/rebuild_models.py; resumable, skips models that exist), then models/README.md.
# DRY_RUN=1 prints the plan; FORCE=1 replaces existing models; ONLY='pq dc' picks steps.
REBUILD_FLAGS = $(if $(filter 1,$(DRY_RUN)),--dry-run) $(if $(filter 1,$(FORCE)),--force) $(if $(ONLY),--only $(ONLY))
models: setup
	nice -n 5 $(PY) scripts/rebuild_models.py $(REBUILD_FLAGS)
	$(if $(filter 1,$(DRY_RUN)),,$(PY) scripts/models_index.py)

# models/README.md (the index of the shipped models) from the .tflite files and their cards.
models-index: setup
	$(PY) scripts/models_index.py

clean:
	rm -rf $(VENV) build *.egg-info out
