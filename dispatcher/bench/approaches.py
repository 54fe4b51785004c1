"""The approaches the benchmark compares, each run as real processes and timed frame by frame.

Blender's own ways (through ``blender_run.py``, a bpy script run by the worker program):

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
* ``single``        one worker on one GPU rendering F/N frames: the ideal bound is N x its steady rate
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
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field

from .. import report, timeline

HERE = os.path.dirname(os.path.abspath(__file__))
SCENE_SCRIPT = os.path.join(HERE, "scene.py")
RUN_SCRIPT = os.path.join(HERE, "blender_run.py")
PACKAGE_PARENT = os.path.dirname(os.path.dirname(HERE))

BLENDER_APPROACHES = ("combined", "combined-pd", "static-chunks", "fresh-per-frame", "blender-1gpu")
PRODUCT_APPROACHES = ("per-card", "per-card-m", "product-combined", "auto", "single", "per-card-threads")
ALL_APPROACHES = BLENDER_APPROACHES + PRODUCT_APPROACHES
# run when --approaches is not given; blender-1gpu and per-card-threads are asked for by name
DEFAULT_APPROACHES = tuple(name for name in ALL_APPROACHES if name not in ("blender-1gpu", "per-card-threads"))


@dataclass
class Settings:
    """One benchmark run: the machine's lanes and the scene's size."""

    device: str  # CPU, OPTIX, CUDA
    lanes: int  # N: GPUs, or CPU lanes standing in for them
    threads: int  # threads per CPU lane (0 on GPUs)
    total_threads: int
    frames: int
    resolution: str
    samples: int
    triangles: int
    workers_per_gpu: int
    program: str
    out: str
    gpu_uuids: list[str] = field(default_factory=list)
    gpu_names: list[str] = field(default_factory=list)
    timeout: float = 3600.0
    keep_frames: bool = False
    label: str = ""
    combined_frames: int = 0  # Blender combined (defaults) renders only this many frames; 0: all

    @property
    def is_cpu(self) -> bool:
        return self.device == "CPU"


@dataclass
class Run:
    """What one approach did: per-frame records in frames.jsonl form, and the wall time."""

    approach: str
    variant: str
    title: str
    started: float
    finished: float
    lanes: list[str]
    records: list[dict]
    frames: int
    ok: bool = True
    error: str = ""
    note: str = ""
    command: list[str] = field(default_factory=list)
    extra: dict = field(default_factory=dict)

    @property
    def wall(self) -> float:
        return max(0.0, self.finished - self.started)

    def job(self) -> report.Job:
        return report.Job(
            title=self.title,
            records=self.records,
            started=self.started,
            finished=self.finished,
            lanes=self.lanes,
            state="done" if self.ok else "failed",
            total_frames=self.frames,
        )

    def save(self, folder: str) -> None:
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, "frames.jsonl"), "w", encoding="utf-8") as handle:
            for record in self.records:
                handle.write(json.dumps(record) + "\n")
        data = asdict(self)
        data.pop("records")
        data["wall"] = self.wall
        with open(os.path.join(folder, "result.json"), "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=1)

    @classmethod
    def load(cls, folder: str) -> Run:
        with open(os.path.join(folder, "result.json"), encoding="utf-8") as handle:
            data = json.load(handle)
        data.pop("wall", None)
        data["records"] = report.read_records(os.path.join(folder, "frames.jsonl"))
        return cls(**data)


# -- programs ----------------------------------------------------------------------------------------------


def default_program() -> str | None:
    try:
        from ..process import default_program as engine_default
    except ImportError:
        engine_default = None
    if engine_default is not None:
        return engine_default()
    import importlib.util

    if os.environ.get("GRF_BLENDER"):
        return os.environ["GRF_BLENDER"]
    return sys.executable if importlib.util.find_spec("bpy") else shutil.which("blender")


def is_python(program: str) -> bool:
    return "python" in os.path.basename(program).lower()


def script_command(program: str, script: str, args: list[str]) -> list[str]:
    """argv that runs a bpy script: ``python script -- args`` or ``blender -b --factory-startup --python``."""
    if is_python(program):
        return [program, script, "--", *args]
    return [program, "-b", "--factory-startup", "--python", script, "--", *args]


def lane_env(settings: Settings, gpu_indices: list[int] | None) -> dict[str, str]:
    """Environment that pins a process: the GPUs it may see (None: every bench GPU), or no GPU on CPU."""
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    if settings.is_cpu:
        env["CUDA_VISIBLE_DEVICES"] = ""
        return env
    uuids = settings.gpu_uuids if gpu_indices is None else [settings.gpu_uuids[index] for index in gpu_indices]
    env["CUDA_VISIBLE_DEVICES"] = ",".join(uuids)
    env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
    return env


def lane_names(settings: Settings, count: int | None = None) -> list[str]:
    prefix = "cpu" if settings.is_cpu else "gpu"
    return [f"{prefix}{index}" for index in range(count or settings.lanes)]


def kill(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        process.kill()
    process.wait()


def spawn(argv: list[str], env: dict, log_path: str) -> subprocess.Popen:
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    log = open(log_path, "ab")  # noqa: SIM115 - handed to the child
    try:
        return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    finally:
        log.close()


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
    events = []
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
    """frames.jsonl-style records from blender_run.py's render events.

    A frame runs from the previous frame's write (the first from when the file was loaded) to its own
    write; start-up (process launch to file loaded) is a ``setup`` record. Frames never written fail.
    """
    records = []
    loaded = next((event["t"] for event in events if event.get("event") == "loaded"), None)
    cursor = loaded if loaded is not None else exit_time
    records.append({"frame": None, "lane": lane, "start": launch, "end": cursor, "status": "setup"})
    pre: dict[int, float] = {}
    post: dict[int, float] = {}
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
    """Run blender_run.py jobs, at most ``slots`` at once, a freed slot taking the next job (a queue).

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
            running[slot] = (spawn(argv, lane_env(settings, gpus), job["log"]), job)
        time.sleep(0.02)
        for slot, (process, job) in list(running.items()):
            code = process.poll()
            if code is None and time.time() > deadline:
                kill(process)
                code = process.returncode
                job["error"] = "timed out"
            if code is not None:
                job["exit"] = time.time()
                job["returncode"] = code
                del running[slot]
                free.append(slot)
                free.sort()
    return jobs


def run_blender(settings: Settings, approach: str, variant: str, blend: str, folder: str) -> Run:
    frames = list(range(1, settings.frames + 1))
    out = os.path.join(folder, "frames")
    os.makedirs(out, exist_ok=True)
    logs = os.path.join(folder, "logs")
    everything = None if not settings.is_cpu else []
    base = {"blend": blend, "out": out}
    cpu = settings.is_cpu
    if approach == "combined" and 0 < settings.combined_frames < len(frames):
        frames = frames[: settings.combined_frames]  # extrapolated to every frame in the analysis
    if approach == "blender-1gpu":
        frames = frames[: math.ceil(len(frames) / settings.lanes)]
        jobs = [
            dict(
                base,
                lane=lane_names(settings, 1)[0],
                frames=frames,
                persistent=True,
                threads=settings.total_threads if cpu else 0,
                gpus=[] if cpu else [0],
                timing=os.path.join(folder, "timing-0.jsonl"),
                log=os.path.join(logs, "blender-1gpu.log"),
            )
        ]
        slots, lanes, title = 1, [jobs[0]["lane"]], "Blender, 1 GPU + persistent data"
    elif approach in ("combined", "combined-pd"):
        persistent = approach == "combined-pd"
        jobs = [
            dict(
                base,
                lane="all" if not cpu else "cpu-all",
                frames=frames,
                persistent=persistent,
                threads=settings.total_threads if cpu else 0,
                gpus=everything,
                timing=os.path.join(folder, "timing-0.jsonl"),
                log=os.path.join(logs, "combined.log"),
            )
        ]
        slots = 1
        lanes = [jobs[0]["lane"]]
        title = "Blender combined" + (" + persistent data" if persistent else ", defaults")
    elif approach == "static-chunks":
        chunk = math.ceil(len(frames) / settings.lanes)
        lanes = lane_names(settings)
        jobs = []
        for index, lane in enumerate(lanes):
            part = frames[index * chunk : (index + 1) * chunk]
            if not part:
                continue
            jobs.append(
                dict(
                    base,
                    lane=lane,
                    frames=part,
                    persistent=None,  # the file's setting: Blender's default, off
                    threads=settings.threads if cpu else 0,
                    gpus=[] if cpu else [index],
                    timing=os.path.join(folder, f"timing-{lane}.jsonl"),
                    log=os.path.join(logs, f"{lane}.log"),
                )
            )
        slots = len(jobs)
        title = f"static chunks, {settings.lanes} processes"
    elif approach == "fresh-per-frame":
        lanes = lane_names(settings)
        jobs = [
            dict(
                base,
                frames=[frame],
                persistent=None,
                threads=settings.threads if cpu else 0,
                timing=os.path.join(folder, f"timing-f{frame}.jsonl"),
                log=os.path.join(logs, f"frame{frame}.log"),
            )
            for frame in frames
        ]
        slots = settings.lanes
        title = "fresh process per frame"
    else:
        raise ValueError(f"not a Blender approach: {approach}")

    for path in [job["timing"] for job in jobs]:
        if os.path.exists(path):
            os.remove(path)
    if approach == "fresh-per-frame":
        for job in jobs:
            job["gpus"] = [] if cpu else "slot"  # pinned to the GPU of the slot it lands in
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
    run = Run(
        approach=approach,
        variant=variant,
        title=title,
        started=started,
        finished=finished,
        lanes=lanes,
        records=records,
        frames=len(frames),
        ok=not errors,
        error="; ".join(errors[:3]),
        command=done[0].get("argv", []) if done else [],
    )
    if approach == "combined" and len(frames) < settings.frames:
        run.extra["extrapolate_to"] = settings.frames
    _drop_frames(settings, out)
    return run


def _drop_frames(settings: Settings, out: str) -> None:
    if not settings.keep_frames:
        shutil.rmtree(out, ignore_errors=True)


# -- this product ------------------------------------------------------------------------------------------


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
    argv = [
        sys.executable,
        "-m",
        "dispatcher",
        "render",
        blend,
        "--frames",
        f"1-{frames}",
        "--output",
        out,
        "--job-dir",
        job_dir,
        "--overwrite",
        "--blender",
        settings.program,
        "--json",
        *args,
    ]
    env = lane_env(settings, None) if not settings.is_cpu else dict(os.environ)
    env["PYTHONPATH"] = PACKAGE_PARENT + os.pathsep + env.get("PYTHONPATH", "")
    log_path = os.path.join(folder, "logs", "dispatcher.log")
    started = time.time()
    process = spawn(argv, env, log_path)
    error = ""
    try:
        process.wait(timeout=settings.timeout)
    except subprocess.TimeoutExpired:
        kill(process)
        error = "timed out"
    finished = time.time()
    try:
        job = report.load_job(job_dir)
    except FileNotFoundError:
        job = report.Job(title=title, records=[])
    records = [record for record in job.records if record.get("status") != "setup"]
    records += _setup_records(records, started)
    extra = {}
    status = report.read_json(os.path.join(job_dir, "status.json")) or {}
    if status.get("autotune"):
        extra["autotune"] = status["autotune"]
    phases = timeline.load(job_dir)
    if phases:
        extra["timeline"] = phases
    summary = _last_json(log_path)
    if summary and summary.get("autotune"):
        extra["autotune"] = summary["autotune"]
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
    _drop_frames(settings, out)
    return run


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
