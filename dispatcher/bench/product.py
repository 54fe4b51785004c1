"""This product's approaches in the benchmark: ``python -m dispatcher render`` as a real process, timed."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import time

from .. import report, timeline
from ..process import kill_and_reap, spawn_logged
from ..status import read_status
from .common import PACKAGE_PARENT, Run, Settings, drop_frames, lane_env


def product_args(settings: Settings, approach: str, variant: str) -> tuple[list[str], str, int]:
    """CLI flags for a product approach; also its title and its lane count."""
    m = settings.workers_per_gpu
    deforming = variant == "deforming"
    if settings.is_cpu:
        n, t = settings.lanes, settings.threads
        table = {
            "per-card": (["--layout", "per-card", "--cpu-lanes", str(n), "--threads", str(t)], "product per-card", n),
            "per-card-m": (
                ["--layout", "per-card", "--cpu-lanes", str(n * m), "--threads", str(max(1, t // m))],
                f"product {m} workers/lane",
                n * m,
            ),
            "product-combined": (
                ["--layout", "combined", "--cpu-lanes", "1", "--threads", str(settings.total_threads)],
                "product combined",
                1,
            ),
            "auto": (["--layout", "auto"], "product --layout auto", 0),
            "single": (["--layout", "per-card", "--cpu-lanes", "1", "--threads", str(t)], "one worker, one lane", 1),
            "per-card-threads": (
                ["--layout", "per-card", "--cpu-lanes", str(n), "--threads", str(settings.total_threads)],
                f"product per-card, {settings.total_threads} threads each",
                n,
            ),
        }
        args, title, lanes = table[approach]
        args = ["--device", "CPU", *args]
    else:
        n = settings.lanes
        every = ",".join(str(index) for index in range(n))
        table = {
            "per-card": (["--layout", "per-card"], "product per-card", n),
            "per-card-m": (["--layout", "per-card", "--workers-per-gpu", str(m)], f"product {m} workers/GPU", n * m),
            "product-combined": (["--layout", "combined"], "product combined", 1),
            "auto": (["--layout", "auto"], "product --layout auto", 0),
            "single": (["--layout", "per-card", "--gpus", "0"], "one worker, one GPU", 1),
            "per-card-threads": (
                ["--layout", "per-card", "--threads", str(settings.total_threads)],
                f"product per-card, {settings.total_threads} CPU threads each",
                n,
            ),
        }
        args, title, lanes = table[approach]
        args = ["--device", settings.device, *args]
        if approach != "single":
            args += ["--gpus", every]
    if approach == "per-card-m" and deforming:
        args.append("--no-persistent-data")
        title += ", no persistent data"
    return args, title, lanes


def run_product(settings: Settings, approach: str, variant: str, blend: str, folder: str) -> Run:
    frames = settings.frames if approach != "single" else math.ceil(settings.frames / settings.lanes)
    args, title, _lanes = product_args(settings, approach, variant)
    out = os.path.join(folder, "frames")
    job_dir = os.path.join(folder, "job")
    shutil.rmtree(job_dir, ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    argv = [sys.executable, "-m", "dispatcher", "render", blend, "--frames", f"1-{frames}", "--output", out,
            "--job-dir", job_dir, "--overwrite", "--blender", settings.program, "--json", *args]  # fmt: skip
    env = lane_env(settings, None) if not settings.is_cpu else dict(os.environ)
    env["PYTHONPATH"] = PACKAGE_PARENT + os.pathsep + env.get("PYTHONPATH", "")
    log_path = os.path.join(folder, "logs", "dispatcher.log")
    started = time.time()
    process = spawn_logged(argv, env, log_path)
    error = ""
    try:
        process.wait(timeout=settings.timeout)
    except subprocess.TimeoutExpired:
        kill_and_reap(process)
        error = "timed out"
    finished = time.time()
    try:
        job = report.load_job(job_dir)
    except FileNotFoundError:
        job = report.Job(title=title, records=[])
    records = [record for record in job.records if record.get("status") != "setup"]
    records += _setup_records(records, started)
    extra = _autotune_choice(job_dir, log_path)
    phases = timeline.load(job_dir)
    if phases:
        extra["timeline"] = phases  # the job's own phases (timeline.py), for the table and the first-frame goal
    if extra.get("autotune", {}).get("reason"):
        title += f" [{extra['autotune'].get('key', extra['autotune'].get('layout'))}]"
    ok = process.returncode == 0 and not error
    if not ok and not error:
        error = f"exit {process.returncode} (log {log_path})"
    run = Run(
        approach=approach,
        variant=variant,
        title=title,
        started=started,
        finished=finished,
        lanes=job.lanes or sorted({str(record.get("lane")) for record in records}),
        records=records,
        frames=frames,
        ok=ok,
        error=error,
        command=argv,
        extra=extra,
    )
    drop_frames(settings, out)
    return run


def _autotune_choice(job_dir: str, log_path: str) -> dict:
    """{"autotune": choice} from the job's status, or the dispatcher's last JSON line; {} without one."""
    extra = {}
    status = read_status(job_dir)
    if status and status.autotune:
        extra["autotune"] = status.autotune
    summary = _last_json(log_path)
    if summary and summary.get("autotune"):
        extra["autotune"] = summary["autotune"]
    return extra


def _setup_records(records: list[dict], launch: float) -> list[dict]:
    """Per lane: launch of the dispatcher -> the lane's first frame start, drawn as start-up."""
    first: dict[str, float] = {}
    for record in records:
        lane = str(record.get("lane"))
        start = report._number(record.get("start"))
        if start is not None and (lane not in first or start < first[lane]):
            first[lane] = start
    return [
        {"frame": None, "lane": lane, "start": launch, "end": start, "status": "setup"} for lane, start in first.items()
    ]


def _last_json(path: str) -> dict | None:
    """The dispatcher's --json summary (the last JSON object printed to its log)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            text = handle.read()
    except OSError:
        return None
    start = text.rfind("\n{")
    start = 0 if start < 0 and text.startswith("{") else start + 1
    try:
        return json.loads(text[start:]) if start >= 0 else None
    except json.JSONDecodeError:
        return None
