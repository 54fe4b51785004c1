"""Helpers for tests: build real bpy scenes, find worker processes, run the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
DEMO_SCENE = ROOT / "dispatcher" / "blender_scripts" / "demo_scene.py"
WORKER = ROOT / "dispatcher" / "blender_scripts" / "worker.py"


def build_scene(path: Path, frames: int = 8, size: str = "32x32", samples: int = 4, *extra: str) -> Path:
    """Save a small animated Cycles scene with the real bpy module."""
    args = ["--out", str(path), "--frames", str(frames), "--size", size, "--samples", str(samples), *extra]
    subprocess.run([sys.executable, str(DEMO_SCENE), *args], check=True, capture_output=True, timeout=120)
    return path


def worker_processes(marker: str | None = None) -> list[psutil.Process]:
    """Live worker processes (optionally only those whose command line contains ``marker``)."""
    found = []
    for process in psutil.process_iter(["cmdline", "status"]):
        try:
            cmdline = " ".join(process.info["cmdline"] or [])
            if process.info["status"] == psutil.STATUS_ZOMBIE:
                continue
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if str(WORKER) in cmdline and (marker is None or marker in cmdline):
            found.append(process)
    return found


def frame_names(folder) -> list[str]:
    """The files in an output folder, without the farm's own manifest and lock file."""
    from dispatcher.output_guard import FOLDER_FILES

    return sorted(name for name in os.listdir(folder) if name not in FOLDER_FILES)


def leftovers(folder) -> list[str]:
    """Hidden files in an output folder other than the farm's manifest and lock: partial or temporary files."""
    return [name for name in frame_names(folder) if name.startswith(".")]


def wait_for(condition, timeout: float = 60.0, interval: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def run_cli(*args: str, timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    """python -m dispatcher ... from the repository root, as a user would type it."""
    return subprocess.run(
        [sys.executable, "-m", "dispatcher", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


EXTENSION_NAME = "gpu_render_farm"


def load_extension():
    """Import the repository root as the package ``gpu_render_farm`` (relative imports work)."""
    import importlib.util

    if EXTENSION_NAME in sys.modules:
        return sys.modules[EXTENSION_NAME]
    spec = importlib.util.spec_from_file_location(
        EXTENSION_NAME, ROOT / "__init__.py", submodule_search_locations=[str(ROOT)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[EXTENSION_NAME] = module
    spec.loader.exec_module(module)
    module.__time__ = os.path.getmtime(module.__file__)  # addon_utils would reload a module without it
    return module
