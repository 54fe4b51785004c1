"""`render` starts the job's workers while it reads the scene; the job adopts them, a refusal kills them."""

import json
import os

from farmtest import build_scene, frame_names, run_cli, worker_processes

from dispatcher import jobs


def warm_logs() -> list[str]:
    root = os.path.join(jobs.default_jobs_root(), ".warm")
    return [os.path.join(folder, name) for folder, _, names in os.walk(root) for name in names]


def test_a_foreground_render_adopts_the_workers_it_started_while_reading_the_scene(tiny_blend, tmp_path):
    out, job = tmp_path / "out", tmp_path / "job"
    result = run_cli("render", str(tiny_blend), "-o", str(out), "--job-dir", str(job), "--cpu-lanes", "2",
                     "--format", "JPEG", "--quiet")  # fmt: skip
    assert result.returncode == 0, result.stderr
    names = frame_names(out)
    assert names == [f"frame_{frame:04d}.jpg" for frame in range(1, 9)]
    for name in names:  # the scene saves PNG: the adopted workers were told the job's format
        assert (out / name).read_bytes()[:3] == b"\xff\xd8\xff", name
    for lane in ("cpu0", "cpu1"):  # one worker per lane: the warm one, its log moved into the job
        assert (job / "logs" / f"{lane}.log").read_text().count("=== start") == 1
    timeline = json.loads((job / "timeline.json").read_text())
    ready = timeline["job"]["dispatcher_ready"]
    assert all(lane["spawned"] < ready for lane in timeline["lanes"].values())  # started before the job was
    assert warm_logs() == [] and not worker_processes(str(tiny_blend))


def test_a_refused_render_kills_the_workers_it_started(tmp_path):
    blend = build_scene(tmp_path / "no camera.blend", 2, "32x32", 1, "--no-camera")
    result = run_cli("render", str(blend), "-o", str(tmp_path / "out"), "--job-dir", str(tmp_path / "job"),
                     "--cpu-lanes", "2")  # fmt: skip
    assert result.returncode == 2 and "no camera" in result.stderr and result.stderr.count("\n") == 1
    assert not (tmp_path / "job").exists() and not (tmp_path / "out").exists()
    assert not worker_processes(str(blend)) and warm_logs() == []
