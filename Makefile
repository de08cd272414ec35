# The verbs people need. Every target sets itself up first (scripts/setup.sh).
VENV ?= .venv
PY := $(VENV)/bin/python
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: setup demo test test-slow test-all goldens bench docs docs-serve clean wheels pi-e2e

setup:
	@bash scripts/setup.sh

demo: setup          ## the main job: BNN vs SBNN on Fashion-MNIST
	$(PY) -m sbnn_zoo.demo

test: setup          ## default test run (< 20 min on 2 cores)
	$(PY) -m pytest -m "not slow" -q

test-slow: setup     ## the slow tests only (no slow test selected is not a failure)
	$(PY) -m pytest -m slow -q; rc=$$?; if [ $$rc -eq 5 ]; then exit 0; else exit $$rc; fi

test-all: setup      ## what CI runs
	$(PY) -m pytest -q

goldens: setup       ## rewrite tests/golden/ (converted test models); commit the result
	SBNN_WRITE_GOLDENS=1 $(PY) -m pytest -q -m "not slow" tests/test_end_to_end.py \
	  tests/test_runtime_ops.py tests/test_runtime_bad_input.py tests/test_version_guards.py \
	  tests/test_fuzz_regressions.py

bench: setup
	$(PY) benchmarks/train_step.py

wheels: setup        ## sbnn-runtime wheels for x86_64 + aarch64 (manylinux, auditwheel-checked) in dist/
	bash scripts/build_wheels.sh

pi-e2e: wheels       ## the aarch64 wheel in an emulated Raspberry Pi OS userland (docs/deployment.md)
	$(PY) scripts/pi_e2e.py

docs: setup          ## the documentation site in site/ (strict: any warning fails)
	$(PY) -m mkdocs build --strict

docs-serve: setup    ## the site on http://127.0.0.1:8000 while editing docs/
	$(PY) -m mkdocs serve

clean:
	rm -rf $(VENV) build *.egg-info artifacts .pytest_cache site
