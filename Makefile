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

.PHONY: install install-train test test-node test-train lint demo bench clean

$(VENV)/bin/activate:
	$(PYTHON) -m venv $(VENV)

## install: venv with the node, its Python deps and the ROS 2 wheels (idempotent)
install: $(VENV)/bin/activate
	$(PIP) install --upgrade pip setuptools wheel
	$(PIP) install -r requirements/ros.txt -r requirements/test.txt
	$(PIP) install --force-reinstall --no-deps . && $(PIP) install .
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

## demo: replay the bundled Navcam sequence into the running node and write a contact sheet
demo: install
	$(PY) -m ai4mars_perception.demo --out demo_output

bench: install
	$(VENV)/bin/ai4mars-perception bench --image samples/navcam/NLA_397681339EDR_F0020000AUT_04096M1.JPG $(BENCH_ARGS)

clean:
	rm -rf build install log demo_output .pytest_cache *.egg-info training/*.egg-info
