"""The approaches the benchmark compares, each run as real processes and timed frame by frame.

Blender's own ways (through ``blender_scripts/bench_timing.py``, a bpy script run by the worker program):

* ``combined``      one Blender process, every GPU enabled, the whole range as ``blender -b -a`` (defaults)
* ``combined-pd``   the same with persistent data on
* ``static-chunks`` the manual method: one process per GPU (``CUDA_VISIBLE_DEVICES``), contiguous chunks
* ``fresh-per-frame`` a new process for every frame, one at a time per GPU, frames from a shared queue
* ``blender-1gpu``  one process on the first GPU, persistent data, F/N frames (the 1-GPU reference)

This product (``python -m dispatcher render``):

* ``per-card``      the default: one long-lived worker per GPU, persistent data, dynamic queue
* ``per-card-m``    m workers per GPU (persistent data off on the deforming variant)
* ``product-combined`` one worker with every GPU
* ``auto``          ``--layout auto`` (autotune's choice)
* ``single``        one worker on one GPU rendering F/N frames: the ideal bound (as if each card ran alone)
* ``per-card-threads`` per-card with every worker given all the host's CPU threads (vs the default share)

``combined`` may render only its first ``--combined-frames`` frames; its wall is then extrapolated.

On a machine without a GPU every "GPU" is a CPU lane with its share of the cores.
Never imports bpy.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import time
from typing import Any

from ..blender_scripts import BENCH_SCENE, BENCH_TIMING
from ..process import blender_command, default_program, kill_and_reap, spawn_logged
from .common import (
    ALL_APPROACHES,
    BLENDER_APPROACHES,
    PRODUCT_APPROACHES,
    Run,
    Settings,
    drop_frames,
    lane_env,
    lane_names,
)
from .product import product_args, run_product

__all__ = ["ALL_APPROACHES", "BLENDER_APPROACHES", "PRODUCT_APPROACHES", "Run", "Settings", "build_scene",
           "default_program", "lane_env", "product_args", "read_timing", "records_from_timing", "run_approach",
           "script_command", "warm_up"]  # fmt: skip
SCENE_SCRIPT = BENCH_SCENE
RUN_SCRIPT = BENCH_TIMING
script_command = blender_command  # python script -- args, or blender -b --factory-startup --python script -- args

# -- the scene ---------------------------------------------------------------------------------------------


def build_scene(settings: Settings, variant: str, log) -> tuple[str, dict]:
    """Build (or reuse) the benchmark .blend of a variant; returns its path and the builder's facts."""
    folder = os.path.join(settings.out, "scenes")
    os.makedirs(folder, exist_ok=True)
    blend = os.path.join(folder, f"{variant}.blend")
    wanted = {
        "triangles": settings.triangles,
        "frames": settings.frames,
        "resolution": settings.resolution,
        "samples": settings.samples,
        "deforming": variant == "deforming",
    }
    sidecar = blend + ".json"
    if os.path.exists(blend) and os.path.exists(sidecar):
        with open(sidecar, encoding="utf-8") as handle:
            saved = json.load(handle)
        if saved.get("wanted") == wanted:
            return blend, saved.get("facts", {})
    args = [
        "--output",
        blend,
        "--triangles",
        str(settings.triangles),
        "--frames",
        str(settings.frames),
        "--resolution",
        settings.resolution,
        "--samples",
        str(settings.samples),
    ]
    if variant == "deforming":
        args.append("--deforming")
    log(f"building the {variant} scene ({settings.triangles} triangles budget) ...")
    result = subprocess.run(
        script_command(settings.program, SCENE_SCRIPT, args),
        capture_output=True,
        text=True,
        env=lane_env(settings, []),
        timeout=1800,
        check=False,
    )
    facts = None
    for line in result.stdout.splitlines():
        if line.startswith("BENCH_SCENE "):
            facts = json.loads(line[len("BENCH_SCENE ") :])
    if result.returncode != 0 or facts is None:
        tail = (result.stderr or result.stdout).strip().splitlines()[-5:]
        raise RuntimeError(f"building the benchmark scene failed: {' | '.join(tail)}")
    with open(sidecar, "w", encoding="utf-8") as handle:
        json.dump({"wanted": wanted, "facts": facts}, handle, indent=1)
    return blend, facts


# -- Blender's own ways ------------------------------------------------------------------------------------


def read_timing(path: str) -> list[dict]:
    events: list[dict] = []
    if not os.path.exists(path):
        return events
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return events


def records_from_timing(events: list[dict], lane: str, launch: float, exit_time: float, frames: list[int]) -> list:
    """frames.jsonl-style records from bench_timing.py's render events.

    A frame runs from the previous frame's write (the first from when the file was loaded) to its own
    write; start-up (process launch to file loaded) is a ``setup`` record. Frames never written fail.
    """
    records = []
    loaded = next((event["t"] for event in events if event.get("event") == "loaded"), None)
    cursor = loaded if loaded is not None else exit_time
    records.append({"frame": None, "lane": lane, "start": launch, "end": cursor, "status": "setup"})
    pre: dict[Any, Any] = {}
    post: dict[Any, Any] = {}
    written = set()
    for event in events:
        kind, frame, moment = event.get("event"), event.get("frame"), event.get("t")
        if kind == "pre":
            pre[frame] = moment
        elif kind == "post":
            post[frame] = moment
        elif kind == "write" and frame not in written:
            written.add(frame)
            render = post[frame] - pre[frame] if frame in pre and frame in post else None
            records.append(
                {
                    "frame": frame,
                    "lane": lane,
                    "start": cursor,
                    "end": moment,
                    "render_seconds": render,
                    "status": "done",
                    "attempt": 1,
                }
            )
            cursor = moment
    for frame in frames:
        if frame not in written:
            records.append({"frame": frame, "lane": lane, "start": cursor, "end": exit_time, "status": "failed"})
            cursor = exit_time
    return records


def _blender_args(settings: Settings, blend: str, frames: str, out: str, timing: str, persistent, threads, extra=()):
    args = ["--blend", blend, "--frames", frames, "--output", out, "--device", settings.device, "--timing", timing]
    if persistent is not None:
        args += ["--persistent-data", "1" if persistent else "0"]
    if threads:
        args += ["--threads", str(threads)]
    return args + list(extra)


def run_processes(settings: Settings, jobs: list[dict], slots: int, deadline: float) -> list[dict]:
    """Run bench_timing.py jobs, at most ``slots`` at once, a freed slot taking the next job (a queue).

    Each job: {lane, slot, frames (list), blend, out, timing, persistent, threads, gpus, log}; returns the
    jobs with launch, exit and returncode filled in.
    """
    pending = list(jobs)
    running: dict[int, tuple[subprocess.Popen, dict]] = {}
    free = list(range(slots))
    while pending or running:
        while pending and free:
            slot = free.pop(0)
            job = pending.pop(0)
            job["slot"] = slot
            job["lane"] = job.get("lane") or lane_names(settings, slots)[slot]
            frames = job["frames"]
            text = f"{frames[0]}-{frames[-1]}" if len(frames) > 1 else str(frames[0])
            argv = script_command(
                settings.program,
                RUN_SCRIPT,
                _blender_args(
                    settings,
                    job["blend"],
                    text,
                    job["out"],
                    job["timing"],
                    job["persistent"],
                    job["threads"],
                    job.get("extra", ()),
                ),
            )
            job["argv"] = argv
            job["launch"] = time.time()
            gpus = [slot] if job["gpus"] == "slot" else job["gpus"]
            running[slot] = (spawn_logged(argv, lane_env(settings, gpus), job["log"]), job)
        time.sleep(0.02)
        for slot, (process, job) in list(running.items()):
            code = process.poll()
            if code is None and time.time() > deadline:
                kill_and_reap(process)
                code = process.returncode
                job["error"] = "timed out"
            if code is not None:
                job["exit"] = time.time()
                job["returncode"] = code
                del running[slot]
                free.append(slot)
                free.sort()
    return jobs


def _combined_jobs(settings: Settings, approach: str, base: dict, frames: list[int]) -> tuple[list[dict], int, str]:
    """One Blender process with every GPU, the whole range (blender-1gpu: the first GPU, F/N frames)."""
    persistent, alone = approach in ("combined-pd", "blender-1gpu"), approach == "blender-1gpu"
    cpu, folder = settings.is_cpu, base["folder"]
    lane = lane_names(settings, 1)[0] if alone else "all" if not cpu else "cpu-all"
    job = dict(base["job"], lane=lane, frames=frames, persistent=persistent,
               threads=settings.total_threads if cpu else 0, gpus=[] if cpu else [0] if alone else None,
               timing=os.path.join(folder, "timing-0.jsonl"),
               log=os.path.join(folder, "logs", f"{approach}.log"))  # fmt: skip
    if alone:
        return [job], 1, "Blender, 1 GPU + persistent data"
    return [job], 1, "Blender combined" + (" + persistent data" if persistent else ", defaults")


def _chunk_jobs(settings: Settings, base: dict, frames: list[int]) -> tuple[list[dict], int, str]:
    """The manual method: one process per GPU, contiguous chunks of the range."""
    chunk, folder, jobs = math.ceil(len(frames) / settings.lanes), base["folder"], []
    for index, lane in enumerate(lane_names(settings)):
        part = frames[index * chunk : (index + 1) * chunk]
        if part:  # persistent None: the file's setting, Blender's default (off)
            jobs.append(dict(base["job"], lane=lane, frames=part, persistent=None,
                             threads=settings.threads if settings.is_cpu else 0,
                             gpus=[] if settings.is_cpu else [index],
                             timing=os.path.join(folder, f"timing-{lane}.jsonl"),
                             log=os.path.join(folder, "logs", f"{lane}.log")))  # fmt: skip
    return jobs, len(jobs), f"static chunks, {settings.lanes} processes"


def _fresh_jobs(settings: Settings, base: dict, frames: list[int]) -> tuple[list[dict], int, str]:
    """A new process for every frame, from a shared queue; each pinned to the GPU of the slot it lands in."""
    folder = base["folder"]
    jobs = [dict(base["job"], frames=[frame], persistent=None, threads=settings.threads if settings.is_cpu else 0,
                 gpus=[] if settings.is_cpu else "slot", timing=os.path.join(folder, f"timing-f{frame}.jsonl"),
                 log=os.path.join(folder, "logs", f"frame{frame}.log"))
            for frame in frames]  # fmt: skip
    return jobs, settings.lanes, "fresh process per frame"


def run_blender(settings: Settings, approach: str, variant: str, blend: str, folder: str) -> Run:
    frames = list(range(1, settings.frames + 1))
    out = os.path.join(folder, "frames")
    os.makedirs(out, exist_ok=True)
    base = {"folder": folder, "job": {"blend": blend, "out": out}}
    if approach == "combined" and 0 < settings.combined_frames < len(frames):
        frames = frames[: settings.combined_frames]  # extrapolated to every frame in the analysis (goals.py)
    if approach == "blender-1gpu":
        frames = frames[: math.ceil(len(frames) / settings.lanes)]
    if approach in ("combined", "combined-pd", "blender-1gpu"):
        jobs, slots, title = _combined_jobs(settings, approach, base, frames)
        lanes = [jobs[0]["lane"]]
    elif approach == "static-chunks":
        jobs, slots, title = _chunk_jobs(settings, base, frames)
        lanes = lane_names(settings)
    elif approach == "fresh-per-frame":
        jobs, slots, title = _fresh_jobs(settings, base, frames)
        lanes = lane_names(settings)
    else:
        raise ValueError(f"not a Blender approach: {approach}")
    for path in [job["timing"] for job in jobs]:
        if os.path.exists(path):
            os.remove(path)
    started = time.time()
    done = run_processes(settings, jobs, slots, started + settings.timeout)
    finished = time.time()
    records = []
    errors = []
    for job in done:
        records += records_from_timing(
            read_timing(job["timing"]), job["lane"], job["launch"], job["exit"], job["frames"]
        )
        if job.get("returncode"):
            errors.append(f"{job['lane']}: exit {job['returncode']} {job.get('error', '')} (log {job['log']})".strip())
    run = Run(approach=approach, variant=variant, title=title, started=started, finished=finished, lanes=lanes,
              records=records, frames=len(frames), ok=not errors, error="; ".join(errors[:3]),
              command=done[0].get("argv", []) if done else [])  # fmt: skip
    if approach == "combined" and len(frames) < settings.frames:
        run.extra["extrapolate_to"] = settings.frames
    drop_frames(settings, out)
    return run


# -- warm-up -----------------------------------------------------------------------------------------------


def warm_up(settings: Settings, blend: str, folder: str) -> float:
    """Render one tiny frame per GPU (in parallel) so kernel compilation and file caches are not timed."""
    jobs = []
    for index in range(1 if settings.is_cpu else settings.lanes):
        lane = lane_names(settings)[index]
        jobs.append(
            {
                "lane": lane,
                "frames": [1],
                "blend": blend,
                "out": os.path.join(folder, "frames"),
                "timing": os.path.join(folder, f"timing-{lane}.jsonl"),
                "persistent": None,
                "threads": settings.total_threads if settings.is_cpu else 0,
                "gpus": [] if settings.is_cpu else [index],
                "log": os.path.join(folder, "logs", f"{lane}.log"),
                "extra": ["--samples", "1", "--resolution", "64x36"],
            }
        )
    started = time.time()
    run_processes(settings, jobs, len(jobs), started + max(settings.timeout, 3600))
    shutil.rmtree(os.path.join(folder, "frames"), ignore_errors=True)
    return time.time() - started


def run_approach(settings: Settings, approach: str, variant: str, blend: str) -> Run:
    folder = os.path.join(settings.out, variant, approach)
    if approach in BLENDER_APPROACHES:
        run = run_blender(settings, approach, variant, blend, folder)
    elif approach in PRODUCT_APPROACHES:
        run = run_product(settings, approach, variant, blend, folder)
    else:
        raise ValueError(f"unknown approach {approach!r} (choose from {', '.join(ALL_APPROACHES)})")
    run.save(folder)
    return run
