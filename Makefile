# ai4mars_perception — the two commands users need: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := $(CURDIR)/.venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
# Loopback-only DDS in a domain of our own; ament index in the venv.
export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST
export ROS_DOMAIN_ID ?= $(shell echo $$(( $$$$ % 90 + 5 )))
export AMENT_PREFIX_PATH := $(VENV)$(if $(AMENT_PREFIX_PATH),:$(AMENT_PREFIX_PATH))
export FASTDDS_DEFAULT_PROFILES_FILE ?= $(CURDIR)/config/fastdds_large_shm.xml
export PYTHONUNBUFFERED := 1
PYTEST_ARGS ?=

.PHONY: install install-train test test-node test-train lint demo smoke-model bench clean gpu-wheels gpu-pack gpu-check gpu-init

$(VENV)/bin/activate:
	$(PYTHON) -m venv $(VENV)

## install: venv with the node, its Python deps and the ROS 2 wheels (idempotent)
install: $(VENV)/bin/activate
	$(PIP) install --upgrade pip setuptools wheel
	$(PIP) install -r requirements/ros.txt -r requirements/test.txt
	$(PIP) install --force-reinstall --no-deps . && $(PIP) install .
	@# ros2 launch looks for executables in <prefix>/lib/<package> (pip ignores setup.cfg's install_scripts)
	@mkdir -p $(VENV)/lib/ai4mars_perception && for exe in terrain_segmentation ai4mars-perception; do \
	  ln -sf ../../bin/$$exe $(VENV)/lib/ai4mars_perception/$$exe; done
	@grep -q AMENT_PREFIX_PATH $(VENV)/bin/activate || \
	  printf '\n# ai4mars_perception: ament index of the ROS wheels in this venv\nexport AMENT_PREFIX_PATH="%s$${AMENT_PREFIX_PATH:+:$$AMENT_PREFIX_PATH}"\nexport ROS_AUTOMATIC_DISCOVERY_RANGE="$${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}"\n' "$(VENV)" >> $(VENV)/bin/activate
	@echo "installed: source .venv/bin/activate, then run terrain_segmentation or ai4mars-perception"

## install-train: the training package with PyPI torch + torchvision + fastai
install-train: install
	$(PIP) install -r requirements/train.txt
	$(PIP) install --force-reinstall --no-deps ./training && $(PIP) install ./training

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test-node: install
	$(PY) -m pytest test $(PYTEST_ARGS)

test-train: install-train
	$(PY) -m pytest training/tests $(PYTEST_ARGS)

## test: install everything, lint, run every test
test: install-train lint
	$(PY) -m pytest test training/tests $(PYTEST_ARGS)

## demo: replay the bundled Navcam sequence into the running node and write a contact sheet.
## Uses the shipped CPU model (models/ai4mars_unet_r18_int8.onnx, else models/ai4mars_unet_r18.onnx); MODEL=path runs another one. Only where neither
## exists is a CPU smoke model trained here from ../shared/data/ai4mars-256 (a few minutes), labelled as such.
MODEL ?= $(firstword $(wildcard models/ai4mars_unet_r18_int8.onnx) models/ai4mars_unet_r18.onnx)
AI4MARS_DATA ?= $(CURDIR)/../shared/data/ai4mars-256
SMOKE_RUN := runs/demo-smoke
SMOKE_MODEL := $(SMOKE_RUN)/export/model.onnx

demo: install
	@if [ -f "$(MODEL)" ]; then m="$(MODEL)"; else \
	  echo "demo: no model at $(MODEL): training a CPU smoke model (pipeline demo only, not accurate)"; \
	  $(MAKE) --no-print-directory smoke-model && m="$(SMOKE_MODEL)"; fi; \
	$(VENV)/bin/ai4mars-perception demo --model "$$m" --out demo_output

smoke-model: $(SMOKE_MODEL)
$(SMOKE_MODEL):
	@test -d "$(AI4MARS_DATA)/msl/labels/train" || { echo "demo: no model and no AI4Mars data at $(AI4MARS_DATA); run make demo MODEL=path/to/model.onnx"; exit 2; }
	$(MAKE) --no-print-directory install-train
	$(VENV)/bin/ai4mars-train fit --data "$(AI4MARS_DATA)" --size 64 --epochs 3 --limit 800 --bs 16 --lr 3e-3 \
	  --no-pretrained --out $(SMOKE_RUN)
	$(VENV)/bin/ai4mars-train export --run $(SMOKE_RUN) --out $(SMOKE_RUN)/export --frames samples/navcam \
	  --model-version "cpu-smoke-64px (demo only, not a trained release)"

bench: install
	$(VENV)/bin/ai4mars-perception bench --image samples/navcam/NLA_397681339EDR_F0020000AUT_04096M1.JPG --bags samples/navcam $(BENCH_ARGS)

## GPU shot (docs/TRAINING.md "The GPU shot"): the carried wheels, the packed data, the size of what travels
GPU_PACK_QUALITY ?= 75
gpu-wheels: $(VENV)/bin/activate
	@mkdir -p .whl && $(PIP) download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation py \
	  --abi none --platform any -d .whl -r requirements/gpu-wheels.txt && ls .whl

gpu-pack: install-train
	@test -f .data/pack.tgz || (rm -rf .data/pack && $(VENV)/bin/ai4mars-train pack --data "$(AI4MARS_DATA)" \
	  --out .data/pack --quality $(GPU_PACK_QUALITY) --archive)

gpu-check: gpu-wheels gpu-pack
	$(VENV)/bin/ai4mars-train carry-size .whl .data/pack.tgz

## gpu-init: the shipped float model as the shot's start weights, carried by a first, short device command
gpu-init: install-train
	@mkdir -p .data/init && cp models/ai4mars_unet_r18.onnx .data/init/start.onnx
	$(VENV)/bin/ai4mars-train carry-size .data/init

clean:
	rm -rf build install log demo_output .pytest_cache *.egg-info training/*.egg-info
