"""`render` starts the job's workers while it reads the scene; the job adopts them, a refusal kills them."""

import json
import os
import subprocess

from farmtest import build_scene, frame_names, run_cli, worker_processes

from dispatcher import jobs


def dead_pid() -> int:
    process = subprocess.Popen(["true"])  # noqa: S607
    process.wait()
    return process.pid


def warm_logs() -> list[str]:
    root = os.path.join(jobs.default_jobs_root(), ".warm")
    return [os.path.join(folder, name) for folder, _, names in os.walk(root) for name in names]


def test_a_foreground_render_adopts_the_workers_it_started_while_reading_the_scene(tiny_blend, tmp_path):
    out, job = tmp_path / "out", tmp_path / "job"
    orphan = os.path.join(jobs.default_jobs_root(), ".warm", f"warm-{dead_pid()}-x")
    os.makedirs(orphan)
    open(os.path.join(orphan, "cpu0.log"), "w").close()  # left by a render command killed during start-up
    result = run_cli("render", str(tiny_blend), "-o", str(out), "--job-dir", str(job), "--cpu-lanes", "2",
                     "--format", "JPEG", "--quiet")  # fmt: skip
    assert result.returncode == 0, result.stderr
    names = frame_names(out)
    assert names == [f"frame_{frame:04d}.jpg" for frame in range(1, 9)]
    for name in names:  # the scene saves PNG: the adopted workers were told the job's format
        assert (out / name).read_bytes()[:3] == b"\xff\xd8\xff", name
    for lane in ("cpu0", "cpu1"):  # one worker per lane: the warm one, its log moved into the job
        log = (job / "logs" / f"{lane}.log").read_text()
        assert log.count("=== start") == 1 and "=== adopted by the job; frames saved as JPEG" in log
    scene = json.loads((job / "scene.json").read_text())  # the facts the job keeps name what it renders
    assert (scene["file_format"], scene["file_extension"]) == ("JPEG", ".jpg")
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


def test_a_worker_started_for_a_lane_that_came_out_different_is_replaced_not_adopted(tiny_blend, tmp_path):
    import queue
    import sys

    from dispatcher.lanes import Lane
    from dispatcher.process import worker_command
    from dispatcher.spec import JobSpec
    from dispatcher.warm_start import WarmStart

    spec = JobSpec(blend=str(tiny_blend), output_dir=str(tmp_path / "out"))
    lanes = [Lane("cpu0", "CPU", threads=1), Lane("cpu1", "CPU", threads=1)]
    warm = WarmStart(spec, sys.executable, lanes, None, str(tmp_path / "warm"))
    assert warm.scene_facts()["camera"] is True  # the first ready worker's facts, as the probe gives them
    early = {name: worker.process for name, worker in warm.workers.items()}
    changed = worker_command(sys.executable, spec.blend, ["--lane", "cpu0", "--device-type", "CPU", "--gpu-pci", "",
                                                          "--threads", "2", "--persistent-data", "1"])  # fmt: skip
    inbox: queue.Queue = queue.Queue()
    handle = warm.start(("cpu0", 1), changed, dict(warm.workers["cpu0"].env), str(tmp_path / "job.log"), inbox)
    try:
        assert handle is not early["cpu0"] and early["cpu0"].poll() is not None  # 2 threads, not 1: a new one
        assert "cpu0" not in warm.spawned  # not adopted
        warm.close()
        assert early["cpu1"].poll() is not None and not (tmp_path / "warm").exists()
    finally:
        handle.kill()
        handle.wait(5)
