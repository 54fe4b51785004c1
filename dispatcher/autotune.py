"""Choose how to lay workers out on this machine's GPUs (``--layout auto``). Pure functions; no bpy, no I/O.

What the rules rest on (measured with Cycles OptiX, 1280x720, 128 samples, ~1M triangles, 4x H200):

* Blender's own multi-GPU mode (one process, every card) was no faster than one card: per-frame CPU work
  (scene sync, BVH build, image write) is serial and dominates, so GPUs wait.
* One long-lived worker per card with persistent data was 7-8x faster than that; a fresh process per frame
  only 2.8x (start-up and scene load paid every frame). So: static geometry -> per-card, persistent data.
* When geometry deforms every frame, persistent data cannot keep that geometry, and without persistent data
  2-4 processes on one card beat one process by 1.5-1.6x (one renders while the other syncs). But measured
  here on an H200 (2026-11-24, docs/benchmarks.md), a deforming scene still rendered fastest with one
  persistent worker per card (19.5 s for 16 frames) against 2 workers without it (20.4 s): persistent data
  keeps everything that does not deform (lights, materials, static objects, kernels). So deforming geometry
  keeps the per-card/persistent default; 2 workers per card are chosen only from measurements.
* A job with fewer frames than cards leaves cards idle per-card; there several cards per frame win.

``measurements`` (optional) maps a configuration key (see ``config_key``) to the machine's wall seconds per
frame measured over the first frames; the fastest measured configuration that fits wins, unless the rules'
own choice was measured within 5 % of it.
"""

from __future__ import annotations

import math
from typing import Any

from .lanes import default_cpu_lanes

# Memory model (MB). estimated_vram_mb comes from the worker's --inspect when it knows better.
GPU_BASE_MB = 600  # CUDA context, OptiX pipeline and kernels, film buffers of a small frame
GPU_MB_PER_TRIANGLE = 0.0004  # geometry + BVH on the card, ~400 bytes a triangle
HOST_BASE_MB = 700  # a Blender process with Cycles loaded
HOST_MB_PER_TRIANGLE = 0.0012  # Blender's mesh + evaluated copy + Cycles' host-side scene
VRAM_HEADROOM = 0.85  # never plan more than this share of a card's free memory
HOST_HEADROOM = 0.80
KEEP_RULE_WITHIN = 0.05  # a measured rule choice within 5 % of the best is kept (stable choices)
MAX_WORKERS_PER_GPU = 2


def config_key(
    layout: str, workers_per_gpu: int = 1, gpus_per_worker: int = 1, persistent_data: bool = True
) -> str:
    """Canonical name of a configuration, e.g. ``per-card/w2/g1/nopd``; keys of ``measurements``."""
    return f"{layout}/w{workers_per_gpu}/g{gpus_per_worker}/{'pd' if persistent_data else 'nopd'}"


def parse_key(key: str) -> dict:
    """Inverse of config_key; raises ValueError on another shape."""
    parts = key.split("/")
    if (
        len(parts) != 4
        or not parts[1].startswith("w")
        or not parts[2].startswith("g")
        or parts[3] not in ("pd", "nopd")
    ):
        raise ValueError(f"not a configuration key: {key!r} (expected e.g. per-card/w1/g1/pd)")
    return {
        "layout": parts[0],
        "workers_per_gpu": int(parts[1][1:]),
        "gpus_per_worker": int(parts[2][1:]),
        "persistent_data": parts[3] == "pd",
    }


def frame_count(scene_info: dict) -> int:
    start = int(scene_info.get("frame_start", 1))
    end = int(scene_info.get("frame_end", start))
    step = max(1, int(scene_info.get("frame_step", 1) or 1))
    return max(0, len(range(start, end + 1, step)))


def vram_estimate_mb(scene_info: dict) -> int:
    """One worker's GPU memory: the inspector's estimate when present, else triangles and film size."""
    estimate = scene_info.get("estimated_vram_mb")
    if estimate:
        return int(estimate)
    width, height = (scene_info.get("resolution") or [1920, 1080])[:2]
    film = width * height * 4 * 16 / 2**20  # a few float4 passes
    return int(GPU_BASE_MB + GPU_MB_PER_TRIANGLE * int(scene_info.get("triangles") or 0) + film)


def host_estimate_mb(scene_info: dict) -> int:
    return int(HOST_BASE_MB + HOST_MB_PER_TRIANGLE * int(scene_info.get("triangles") or 0))


def _cores(cpu: dict) -> int:
    return int(cpu.get("usable_cores") or cpu.get("logical_cores") or 1)


def _host_workers(scene_info: dict, cpu: dict) -> int | None:
    """How many workers host memory holds; None when the memory is unknown."""
    available = cpu.get("memory_available_mb") or cpu.get("memory_total_mb")
    if not available:
        return None
    return max(1, int(available * HOST_HEADROOM // host_estimate_mb(scene_info)))


def _fits(vram_mb: int, workers: int, gpus: list) -> bool:
    free = min((gpu.memory_free_mb or gpu.memory_total_mb) for gpu in gpus)
    return vram_mb * workers <= VRAM_HEADROOM * free


def _result(
    layout: str, workers_per_gpu: int, gpus_per_worker: int, persistent: bool, reason: str, **extra
) -> dict:
    result = {
        "layout": layout,
        "workers_per_gpu": workers_per_gpu,
        "gpus_per_worker": gpus_per_worker,
        "persistent_data": persistent,
        "reason": reason,
    }
    result["key"] = config_key(layout, workers_per_gpu, gpus_per_worker, persistent)
    result.update(extra)
    return result


def _cpu_choice(scene_info: dict, cpu: dict) -> dict:
    cores = _cores(cpu)
    deforming = bool(scene_info.get("deforming"))
    frames = max(1, frame_count(scene_info))
    # Cycles' CPU path tracing uses every thread well; the serial part (sync, BVH build, write) does not.
    # Several lanes with their own threads overlap those serial parts; 4+ cores per lane keeps tiles fed.
    lanes = default_cpu_lanes(cores)
    host = _host_workers(scene_info, cpu)
    if host is not None:
        lanes = min(lanes, host)
    lanes = min(lanes, frames)
    threads = max(1, cores // lanes)
    persistent = not deforming
    why = (
        "deforming geometry, persistent data cannot keep it"
        if deforming
        else "static geometry, persistent data on"
    )
    return _result(
        "per-card",
        1,
        1,
        persistent,
        f"no GPU: {lanes} CPU lane{'s' if lanes > 1 else ''} x {threads} threads ({cores} cores); {why}",
        device="CPU",
        cpu_lanes=lanes,
        threads=threads,
    )


def _rule_choice(scene_info: dict, gpus: list, cpu: dict) -> dict:
    count = len(gpus)
    frames = frame_count(scene_info)
    deforming = bool(scene_info.get("deforming"))
    persistent = True  # measured faster on deforming scenes too (module docstring)
    vram = vram_estimate_mb(scene_info)
    host = _host_workers(scene_info, cpu)
    free = min((gpu.memory_free_mb or gpu.memory_total_mb) for gpu in gpus)

    # Fewer frames than cards: give each frame several cards instead of leaving cards idle.
    if 0 < frames < count:
        per_worker = count // frames
        layout = "combined" if per_worker >= count else ("groups" if per_worker > 1 else "per-card")
        return _result(
            layout,
            1,
            per_worker if layout != "per-card" else 1,
            persistent,
            f"{layout}: only {frames} frame{'s' if frames > 1 else ''} for {count} GPUs, "
            f"so each frame gets {per_worker} GPU{'s' if per_worker > 1 else ''}",
        )

    # Host memory too small for one worker per card: share cards between fewer workers.
    if host is not None and host < count:
        per_worker = math.ceil(count / host)
        layout = "combined" if per_worker >= count else "groups"
        return _result(
            layout,
            1,
            per_worker,
            persistent,
            f"{layout}: host memory holds ~{host} worker{'s' if host > 1 else ''} of "
            f"~{host_estimate_mb(scene_info)} MB, fewer than {count} GPUs",
        )

    if not _fits(vram, 1, gpus):
        return _result(
            "per-card",
            1,
            1,
            persistent,
            f"per-card, 1 worker/GPU: the scene (~{vram} MB) may not fit in {free} MB free on the smallest "
            "GPU; Cycles will fail or spill to host memory",
        )

    what = "deforming geometry (rebuilt each frame; the rest is kept)" if deforming else "static geometry"
    return _result(
        "per-card",
        1,
        1,
        True,
        f"per-card, 1 worker/GPU, persistent data: {what}, so each worker keeps the synced scene between "
        f"frames ({count} GPU{'s' if count > 1 else ''})",
    )


def _feasible(config: dict, scene_info: dict, gpus: list, cpu: dict) -> bool:
    if not gpus:
        return True
    workers_per_card = config["workers_per_gpu"]
    if not _fits(vram_estimate_mb(scene_info), workers_per_card, gpus):
        return False
    host = _host_workers(scene_info, cpu)
    workers = workers_per_card * max(1, len(gpus) // max(1, config["gpus_per_worker"]))
    return host is None or workers <= host


def _seconds(value) -> float | None:
    if isinstance(value, dict):
        value = value.get("seconds_per_frame")
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return seconds if seconds > 0 and math.isfinite(seconds) else None


def choose(scene_info: dict, gpus: list, cpu: dict, measurements: dict | None = None) -> dict:
    """Pick layout, workers per GPU, GPUs per worker and persistent data for this scene on this machine.

    Returns ``{"layout", "workers_per_gpu", "gpus_per_worker", "persistent_data", "reason", "key"}``;
    with no GPU also ``device: "CPU"``, ``cpu_lanes`` and ``threads``.
    """
    if not gpus:
        choice = _cpu_choice(scene_info, cpu)
    else:
        choice = _rule_choice(scene_info, gpus, cpu)
    timed = {}
    for key, value in (measurements or {}).items():
        seconds = _seconds(value)
        if seconds is None:
            continue
        try:
            config = parse_key(key)
        except ValueError:
            continue
        if _feasible(config, scene_info, gpus, cpu):
            timed[key] = (seconds, config)
    if not timed:
        return choice
    best_key = min(timed, key=lambda key: timed[key][0])
    best_seconds, best = timed[best_key]
    own = timed.get(choice["key"])
    if own is not None and own[0] <= best_seconds * (1 + KEEP_RULE_WITHIN):
        choice["reason"] += f"; measured {own[0]:.2f} s/frame, within 5 % of the best ({best_seconds:.2f})"
        return choice
    others = ", ".join(
        f"{key} {seconds:.2f}" for key, (seconds, _config) in sorted(timed.items(), key=lambda i: i[1][0])
    )
    extra = {key: choice[key] for key in ("device", "cpu_lanes", "threads") if key in choice}
    return _result(
        best["layout"],
        best["workers_per_gpu"],
        best["gpus_per_worker"],
        best["persistent_data"],
        f"{best_key}: fastest measured ({others} s/frame)",
        **extra,
    )


def candidates(scene_info: dict, gpus: list, cpu: dict) -> list[dict]:
    """Configurations worth timing on the first frames (the rules' choice first), each fitting the machine."""
    first = choose(scene_info, gpus, cpu)
    if not gpus:
        return [first]
    options = [first]
    count = len(gpus)
    candidates: list[dict[str, Any]] = [
        {"layout": "per-card", "workers_per_gpu": 1, "gpus_per_worker": 1, "persistent_data": True},
        {"layout": "per-card", "workers_per_gpu": 2, "gpus_per_worker": 1, "persistent_data": False},
        {"layout": "combined", "workers_per_gpu": 1, "gpus_per_worker": count, "persistent_data": True},
    ]
    for config in candidates:
        key = config_key(**config)
        if any(option["key"] == key for option in options) or not _feasible(config, scene_info, gpus, cpu):
            continue
        options.append(
            _result(
                config["layout"],
                config["workers_per_gpu"],
                config["gpus_per_worker"],
                config["persistent_data"],
                "candidate",
            )
        )
    return options


def apply_choice(spec, choice: dict, cpu: bool) -> None:
    """Write a layout choice into the job's spec (for this run; spec.json is unchanged)."""
    spec.layout = choice.get("layout", "per-card")
    spec.workers_per_gpu = choice.get("workers_per_gpu", 1)
    spec.gpus_per_worker = choice.get("gpus_per_worker", 1)
    spec.persistent_data = choice.get("persistent_data", True)
    if cpu:
        spec.cpu_lanes = choice.get("cpu_lanes") or spec.cpu_lanes
        spec.threads = choice.get("threads") or spec.threads
