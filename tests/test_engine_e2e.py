"""The engine on real Blender (bpy 5.0.1, Cycles on the CPU): what a user checks after a render."""

import json
import os
import signal
import subprocess
import sys
import time

from farmtest import ROOT, leftovers, run_cli, wait_for, worker_processes

from dispatcher import jobs
from dispatcher.devices import DeviceReport, Gpu
from dispatcher.images import check_image, image_size
from dispatcher.runner import run_job
from dispatcher.spec import JobSpec


def frame_records(job_dir):
    with open(os.path.join(job_dir, "frames.jsonl"), encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def test_two_cpu_lanes_render_each_frame_once(tiny_blend, tmp_path):
    out, job = tmp_path / "out", tmp_path / "job"
    result = run_cli("render", str(tiny_blend), "-o", str(out), "--job-dir", str(job), "--cpu-lanes", "2")
    assert result.returncode == 0, result.stderr
    frames = sorted(out.glob("*.png"))
    assert [path.name for path in frames] == [f"frame_{frame:04d}.png" for frame in range(1, 9)]
    for path in frames:
        assert check_image(str(path)) is None and image_size(str(path)) == (32, 32)
    assert not leftovers(out)  # no temporary or partial file left
    status = jobs.read_status(str(job))
    assert status["state"] == "done" and status["frames"]["done"] == 8 and status["frames"]["total"] == 8
    lanes = status["lanes"]
    assert [lane["name"] for lane in lanes] == ["cpu0", "cpu1"]
    assert sum(lane["frames_done"] for lane in lanes) == 8
    done = [record["frame"] for record in frame_records(job) if record["status"] == "done"]
    assert sorted(done) == list(range(1, 9))  # each frame rendered exactly once
    assert {record["lane"] for record in frame_records(job)} == {"cpu0", "cpu1"}
    # the summary printed for the user adds up
    assert "frames: 8/8 done (8 rendered" in result.stdout
    per_lane = [int(line.split()[-3]) for line in result.stdout.splitlines() if line.startswith("cpu")]
    assert sum(per_lane) == 8
    assert not worker_processes(str(tiny_blend))
    assert oct(os.stat(job).st_mode & 0o777) == "0o700"


def test_rerun_renders_again_and_skip_existing_keeps_the_frames_and_says_whose(tiny_blend, tmp_path):
    """Rendering the same command again renders again (Blender's Overwrite default); --skip-existing keeps."""
    out = tmp_path / "out"
    first = run_cli("render", str(tiny_blend), "-o", str(out), "--frames", "1-4", "--cpu-lanes", "1", "--json")
    assert first.returncode == 0, first.stderr
    first_job = json.loads(first.stdout)["job_id"]
    stamps = {path.name: path.stat().st_mtime_ns for path in out.glob("*.png")}
    again = run_cli("render", str(tiny_blend), "-o", str(out), "--frames", "1-4", "--cpu-lanes", "1", "--json")
    assert again.returncode == 0
    status = json.loads(again.stdout)
    assert status["frames"]["rendered"] == 4 and status["frames"]["kept"] == 0
    assert all(stamps[path.name] != path.stat().st_mtime_ns for path in out.glob("*.png"))
    stamps = {path.name: path.stat().st_mtime_ns for path in out.glob("*.png")}
    kept = run_cli("render", str(tiny_blend), "-o", str(out), "--frames", "1-4", "--cpu-lanes", "1", "--json",
                   "--skip-existing")  # fmt: skip
    status = json.loads(kept.stdout)
    assert kept.returncode == 0 and status["frames"]["rendered"] == 0 and status["frames"]["kept"] == 4
    second_job = json.loads(again.stdout)["job_id"]
    assert status["message"].endswith(f"4 from job {second_job} (same file and settings)")
    assert first_job not in status["message"]  # the frames now on disk are the second job's
    assert stamps == {path.name: path.stat().st_mtime_ns for path in out.glob("*.png")}


def test_missing_gpu_fails_loudly_and_the_cpu_lane_finishes_the_job(tiny_blend, tmp_path):
    ghost = Gpu(0, "NVIDIA Ghost", "GPU-00000000-dead-beef-0000-000000000000", "00000000:00:99.0", 1000, 1000)
    report = DeviceReport(gpus=[ghost], cpu={"usable_cores": 2})
    spec = JobSpec(blend=str(tiny_blend), output_dir=str(tmp_path / "out"), device_type="CUDA", cpu_lane=True,
                   frames="1-4")  # fmt: skip
    job_dir = jobs.create_job(spec, job_dir=str(tmp_path / "job"))
    status = run_job(job_dir, report=report, handle_signals=False)
    gpu_lane, cpu_lane = status["lanes"]
    assert gpu_lane["state"] == "failed" and gpu_lane["frames_done"] == 0
    assert "refusing to render on the CPU" in gpu_lane["last_error"]
    assert gpu_lane["devices_used"] == []
    assert cpu_lane["frames_done"] == 4 and status["frames"]["done"] == 4
    assert status["state"] == "done"


def test_only_missing_gpu_exits_nonzero_with_the_reason(tiny_blend, tmp_path):
    ghost = Gpu(0, "NVIDIA Ghost", "GPU-00000000-dead-beef-0000-000000000000", "00000000:00:99.0", 1000, 1000)
    spec = JobSpec(blend=str(tiny_blend), output_dir=str(tmp_path / "out"), device_type="OPTIX", frames="1-2")
    job_dir = jobs.create_job(spec, job_dir=str(tmp_path / "job"))
    status = run_job(job_dir, report=DeviceReport(gpus=[ghost], cpu={"usable_cores": 2}), handle_signals=False)
    assert status["state"] == "failed"
    assert "not visible to Cycles" in status["message"]
    assert not list((tmp_path / "out").glob("*.png"))


def test_cancel_mid_job_leaves_no_process_and_no_partial_frame_then_resume(slow_blend, tmp_path):
    out, job = tmp_path / "out", tmp_path / "job"
    started = run_cli("render", str(slow_blend), "-o", str(out), "--job-dir", str(job), "--cpu-lanes", "2",
                      "--detach")  # fmt: skip
    assert started.returncode == 0, started.stderr
    wait_for(lambda: len(list(out.glob("*.png"))) >= 2, 120, what="two finished frames")
    assert worker_processes(str(slow_blend)), "workers should be running"
    cancelled = run_cli("cancel", str(job))
    assert cancelled.returncode == 0, cancelled.stdout + cancelled.stderr
    wait_for(lambda: not worker_processes(str(slow_blend)), 15, what="workers to exit")
    status = jobs.read_status(str(job))
    assert status["state"] == "cancelled"
    assert not jobs.is_running(str(job))
    assert not leftovers(out), "a partial frame was left behind"
    before = {path.name for path in out.glob("*.png")}
    assert all(check_image(str(out / name)) is None for name in before)
    assert 2 <= len(before) < 24
    assert jobs.load_spec(str(job)).overwrite == "overwrite"  # the scene's default: an overwrite job
    stamps = {name: (out / name).stat().st_mtime_ns for name in before}

    resumed = run_cli("resume", str(job), "--json")
    assert resumed.returncode == 0, resumed.stderr
    status = json.loads(resumed.stdout)
    assert status["state"] == "done" and status["frames"]["done"] == 24
    assert status["frames"]["skipped"] == len(before) and status["frames"]["rendered"] == 24 - len(before)
    done = [record["frame"] for record in frame_records(job) if record["status"] == "done"]
    assert sorted(done) == list(range(1, 25)), "every frame rendered exactly once over both runs"
    assert stamps == {name: (out / name).stat().st_mtime_ns for name in before}, "finished frames were re-rendered"
    assert not worker_processes(str(slow_blend))


def test_ctrl_c_in_the_terminal_stops_every_worker(slow_blend, tmp_path):
    out = tmp_path / "out"
    process = subprocess.Popen(
        [sys.executable, "-m", "dispatcher", "render", str(slow_blend), "-o", str(out), "--cpu-lanes", "2"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    wait_for(lambda: len(worker_processes(str(slow_blend))) == 2, 60, what="two workers")
    wait_for(lambda: list(out.glob("*.png")), 60, what="a first frame")
    time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    code = process.wait(30)
    assert code == 130
    wait_for(lambda: not worker_processes(str(slow_blend)), 10, what="workers to exit")
    assert not leftovers(out)
