# GPU Render Farm. Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: venv demo test test-slow lint soak bench package ray clean browser-deps serve gui-test

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

# The artist's session in a real Blender 4.3 window (Debian trixie's blender under Xvfb, in a chroot that
# tools/gui_chroot.sh builds once into ~/.cache; needs root). Screenshots and session.json: build/gui/.
gui-test: package
	bash tools/gui_chroot.sh run bash tests/gui/run.sh dist/gpu_render_farm-$$(sed -n 's/^version = "\(.*\)"/\1/p' blender_manifest.toml)-linux_x64.zip build/gui

# Debian's chromium and its driver, for the dashboard's browser test (tests/test_web_browser.py); root or sudo.
browser-deps:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then echo "chromium and chromedriver present"; \
	else SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q chromium chromium-driver; fi

serve: venv
	$(PY) -m dispatcher serve

ray: venv
	$(PY) -m pip install -q -e ".[ray]"

clean:
	rm -rf build dist demo_out bench_out .pytest_cache .ruff_cache .mypy_cache
