# GPU Render Farm. Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: venv demo test test-slow lint soak bench package ray clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; bpy 5.0.1 needs Python 3.11 (set PYTHON=...)"; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

venv: $(STAMP)

demo: venv
	$(PY) -m dispatcher demo

lint: venv
	$(PY) -m ruff check .
	$(PY) -m mypy dispatcher

test: venv lint
	$(PY) -m pytest -m "not slow" -q

test-slow: venv
	$(PY) -m pytest -m slow -q

soak: venv
	$(PY) -m pytest -m slow -q -s tests/test_soak.py

bench: venv
	$(PY) -m dispatcher bench

package: venv
	$(PY) tools/build_package.py

ray: venv
	$(PY) -m pip install -q -e ".[ray]"

clean:
	rm -rf build dist demo_out bench_out .pytest_cache .ruff_cache .mypy_cache
