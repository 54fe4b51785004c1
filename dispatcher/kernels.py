"""Compiled Cycles GPU kernels: which cards have them, and a marker once a card has rendered.

Blender ships CUDA kernels (``cycles/lib/kernel_sm_XX.cubin[.zst]``) for some compute capabilities only;
any other card (H100, H200, A100 with Blender 5.0.1) makes the driver compile the PTX on its first render,
6-8 minutes, cached in ``CUDA_CACHE_PATH``. A card is "compiled" when Blender ships a cubin for its compute
capability, or when a marker says a GPU render finished there with the same Blender kernels, compute
capability, driver and device type (the farm writes one after each GPU lane's first frame, and
``python -m dispatcher prepare`` renders a tiny frame per such card to get there ahead of time).
Markers live beside the kernels they describe: ``CUDA_CACHE_PATH/grf-kernels/``. Never imports bpy.
"""

from __future__ import annotations

import functools
import glob
import json
import os
import re
import subprocess
import threading
import time
from collections.abc import Mapping

from . import jobs

MARKERS = "grf-kernels"
CUBIN = re.compile(r"^kernel_sm_(\d+)\.cubin(\.zst)?$")
PTX = ("kernel_compute_75.ptx.zst", "kernel_compute_75.ptx")
LIB_GLOB = os.path.join("*", "scripts", "addons_core", "cycles", "lib")
FIND_BPY = "import importlib.util as u, os; s = u.find_spec('bpy'); print(os.path.dirname(s.origin) if s else '')"


def cuda_cache_dir(env: Mapping[str, str] | None = None) -> str:
    """The kernel cache every worker shares: CUDA_CACHE_PATH when set, else the farm's own folder."""
    values = os.environ if env is None else env
    return values.get("CUDA_CACHE_PATH") or os.path.join(jobs.user_cache_dir(), "cuda-cache")


@functools.lru_cache(maxsize=8)
def cycles_lib_dir(program: str) -> str | None:
    """Cycles' kernel folder of a worker program (a Blender binary, or a Python with the bpy module)."""
    from .process import is_python_program

    if is_python_program(program):
        try:
            found = subprocess.run([program, "-c", FIND_BPY], capture_output=True, text=True, timeout=30, check=False)
        except (OSError, subprocess.SubprocessError):
            return None
        base = found.stdout.strip()
    else:
        base = os.path.dirname(os.path.realpath(program))
    folders = sorted(glob.glob(os.path.join(glob.escape(base), LIB_GLOB))) if base else []
    return folders[-1] if folders else None


def kernels_id(lib_dir: str | None) -> str | None:
    """Which kernels: Blender's version folder and the size of its PTX (changes when the kernels do)."""
    if not lib_dir:
        return None
    version = os.path.basename(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(lib_dir)))))
    for name in PTX:
        path = os.path.join(lib_dir, name)
        if os.path.exists(path):
            return f"{version}-ptx{os.path.getsize(path)}"
    return version


def shipped_capabilities(lib_dir: str | None) -> set[tuple[int, int]]:
    """Compute capabilities Blender ships a CUDA cubin for (sm_86 -> (8, 6))."""
    found = set()
    for name in os.listdir(lib_dir) if lib_dir and os.path.isdir(lib_dir) else ():
        match = CUBIN.match(name)
        if match:
            found.add((int(match[1][:-1]), int(match[1][-1])))
    return found


def marker_path(cache_dir: str, kernels: str, capability, driver: str | None, device_type: str) -> str:
    major, minor = capability
    name = f"blender{kernels}_sm{major}{minor}_driver{driver or 'unknown'}_{device_type.upper()}.json"
    return os.path.join(cache_dir, MARKERS, re.sub(r"[^A-Za-z0-9._-]", "_", name))


def mark_compiled(cache_dir: str, kernels: str | None, capability, driver, device_type: str, **detail) -> None:
    """Record that a GPU render finished on a card of this kind (so its kernels are in the cache)."""
    if not kernels or not capability:
        return
    path = marker_path(cache_dir, kernels, capability, driver, device_type)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    temp = f"{path}.{os.getpid()}.tmp"
    with open(temp, "w", encoding="utf-8") as handle:
        json.dump({"written_at": time.time(), "driver": driver, "device_type": device_type, **detail}, handle)
    os.replace(temp, path)


def card_status(gpu, lib_dir: str | None, cache_dir: str, driver: str | None, device_type: str) -> dict:
    """One card: are its kernels compiled for this Blender, driver and device type, and why we think so."""
    entry = {"index": gpu.index, "name": gpu.name, "uuid": gpu.uuid, "device_type": device_type}
    capability = tuple(gpu.compute_capability) if gpu.compute_capability else None
    entry["compute_capability"] = f"{capability[0]}.{capability[1]}" if capability else None
    if device_type not in ("OPTIX", "CUDA"):
        return {**entry, "compiled": True, "why": f"{device_type}: no CUDA kernels needed"}
    if capability is None or lib_dir is None:
        missing = "compute capability unknown" if capability is None else "Blender's Cycles kernels not found"
        return {**entry, "compiled": None, "why": missing}
    sm = f"sm_{capability[0]}{capability[1]}"
    if capability in shipped_capabilities(lib_dir):
        return {**entry, "compiled": True, "why": f"Blender ships {sm} kernels"}
    marker = marker_path(cache_dir, kernels_id(lib_dir) or "unknown", capability, driver, device_type)
    if os.path.exists(marker):
        return {**entry, "compiled": True, "why": f"{sm} kernels compiled (marker {os.path.basename(marker)})"}
    why = f"no compiled {sm} kernels yet: the first render compiles them (6-8 minutes); run Prepare GPUs"
    return {**entry, "compiled": False, "why": why}


def kernel_status(report, program: str | None = None, device_type: str | None = None, *, lib_dir=None,
                  env: dict | None = None) -> list[dict]:  # fmt: skip
    """Per GPU of a DeviceReport: {index, name, compute_capability, device_type, compiled, why}.

    ``compiled`` is True, False, or None (cannot tell). Pass ``program`` (the worker program) or, from
    inside Blender, ``lib_dir`` (Cycles' kernel folder).
    """
    from .devices import best_device_type

    device_type = (device_type or best_device_type(report)).upper()
    lib_dir = lib_dir or (cycles_lib_dir(program) if program else None)
    cache_dir = cuda_cache_dir(env)
    return [card_status(gpu, lib_dir, cache_dir, report.driver, device_type) for gpu in report.gpus]


def uncompiled(statuses: list[dict]) -> list[dict]:
    """One card per kind (compute capability, device type) that still needs compiling."""
    chosen: dict[tuple, dict] = {}
    for status in statuses:
        if status["compiled"] is False:
            chosen.setdefault((status["compute_capability"], status["device_type"]), status)
    return list(chosen.values())


def mark_lane_later(lane, devices_used: list, driver: str | None, program: str, cache_dir: str,
                    lib_dir: str | None = None) -> threading.Thread:  # fmt: skip
    """After a GPU lane's first frame: write its cards' markers on a thread (without ``lib_dir``, which
    the worker reports, finding Cycles' kernel folder starts a Python), so the lane's next frame is not
    held up. The thread is not a daemon: a job that ends at once still writes its markers first."""
    used = {device.get("type") for device in devices_used or [] if isinstance(device, dict)}
    device_type = "OPTIX" if "OPTIX" in used else "CUDA" if "CUDA" in used else lane.device_type

    def write() -> None:
        kernels = kernels_id(lib_dir or cycles_lib_dir(program))
        for gpu in lane.gpus:
            try:
                mark_compiled(cache_dir, kernels, gpu.compute_capability, driver, device_type, card=gpu.name)
            except OSError:
                pass

    thread = threading.Thread(target=write, name=f"kernel-marker-{lane.name}")
    thread.start()
    return thread
