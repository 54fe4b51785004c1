"""Benchmark: ``resume`` of an intact, finished job of N frames (default 10,000); prints a table.

    .venv/bin/python tools/bench_resume.py [--frames 10000] [--runs 5] [--keep DIR]

The job is made the way a finished render leaves it, without rendering 10,000 frames: a real .blend
(the demo scene, built with bpy), spec.json as ``render`` writes it, one valid PNG per frame put in
place and recorded in the folder's manifest by this job, frames.jsonl with one line per frame, scene.json
(the scene's facts and Blender's pre-flight, as the first worker leaves them), and a
``done`` status. Each run is ``python -m dispatcher resume JOB --json`` as a user types it, timed from
start to exit; the table also says whether any worker started and whether frames.jsonl grew.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_finished_job(base: str, count: int) -> str:
    from dispatcher import jobs
    from dispatcher.frames import output_path
    from dispatcher.manifest import Identity, Manifest, settings_hash
    from dispatcher.output_guard import blend_identity, pixel_settings, source_blend
    from dispatcher.spec import JobSpec
    from dispatcher.status import JobStatus

    blend = os.path.join(base, "shot.blend")
    script = os.path.join(ROOT, "dispatcher", "blender_scripts", "demo_scene.py")
    subprocess.run([sys.executable, script, "--out", blend, "--frames", "8", "--size", "32x32", "--samples", "1"],
                   check=True, capture_output=True)  # fmt: skip
    out = os.path.join(base, "frames")
    os.makedirs(out)
    spec = JobSpec(blend=blend, output_dir=out, frames=f"1-{count}", file_format="PNG", device_type="CPU",
                   cpu_lanes=1, job_id="bench-resume")  # fmt: skip
    job_dir = jobs.create_job(spec, job_dir=os.path.join(base, "job"))
    from PIL import Image

    Image.new("RGB", (32, 32), (40, 80, 120)).save(os.path.join(base, "one.png"))
    with open(os.path.join(base, "one.png"), "rb") as handle:
        png = handle.read()
    me = Identity(spec.job_id, source_blend(spec), blend_identity(job_dir, blend),
                  settings_hash(pixel_settings(spec, ".png")))  # fmt: skip
    manifest = Manifest(out)
    with open(os.path.join(job_dir, "frames.jsonl"), "w", encoding="utf-8") as log:
        for frame in range(1, count + 1):
            path = output_path(out, spec.file_pattern, frame, ".png")
            with open(path, "wb") as handle:
                handle.write(png)
            manifest.add(path, frame, me)
            log.write(json.dumps({"frame": frame, "lane": "cpu0", "status": "done", "path": path}) + "\n")
    manifest.close()
    from dispatcher.scene_check import inspect_scene

    facts = inspect_scene(spec, sys.executable)  # Blender's pre-flight; scene.json as the first worker leaves it
    jobs.save_scene(job_dir, blend, {**facts, "file_extension": ".png", "extra_outputs": 0, "stereo": False,
                                     "preflight": facts})  # fmt: skip
    jobs.write_status(job_dir, JobStatus(job_id=spec.job_id, state="done", frames={"total": count, "done": count}))
    return job_dir


def time_resume(job_dir: str) -> tuple[float, dict]:
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "dispatcher", "resume", job_dir, "--json"], cwd=ROOT,
                            capture_output=True, text=True)  # fmt: skip
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"resume failed ({result.returncode}): {result.stderr[-500:]}")
    return seconds, json.loads(result.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--keep", help="build the job here and keep it (default: a temporary folder)")
    args = parser.parse_args()
    base = args.keep or tempfile.mkdtemp(prefix="grf-bench-resume-")
    os.makedirs(base, exist_ok=True)
    os.environ.setdefault("GRF_JOBS_DIR", os.path.join(base, "jobs-root"))
    job_dir = make_finished_job(base, args.frames)
    log = os.path.join(job_dir, "frames.jsonl")
    lines_before = sum(1 for _ in open(log, encoding="utf-8"))
    times, status = [], {}
    for _ in range(args.runs):
        seconds, status = time_resume(job_dir)
        times.append(seconds)
    lines_after = sum(1 for _ in open(log, encoding="utf-8"))
    print("| frames | runs | median s | max s | rendered | workers started | frames.jsonl lines before -> after |")
    print("|---|---|---|---|---|---|---|")
    print(f"| {args.frames} | {args.runs} | {statistics.median(times):.2f} | {max(times):.2f} | "
          f"{status['frames']['rendered']} | {len(status['lanes'])} | {lines_before} -> {lines_after} |")  # fmt: skip


if __name__ == "__main__":
    main()
