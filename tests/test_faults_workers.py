"""Worker faults on real Blender workers: kill -9 mid-frame, crashes, CUDA-style errors, hangs, bad output.

Faults other than kill -9 come from worker.py's test-only GRF_FAULT hook (docs/faults.md).
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import psutil
from farmtest import WORKER, frame_names, run_cli, wait_for, worker_processes

from dispatcher import cli, jobs
from dispatcher.devices import DeviceReport
from dispatcher.images import check_image
from dispatcher.runner import run_job
from dispatcher.spec import JobSpec
from dispatcher.status_text import status_table
from dispatcher.supervisor import SupervisorConfig

CPU_ONLY = DeviceReport(gpus=[], cpu={"usable_cores": 2})


def frame_records(job_dir) -> list[dict]:
    with open(os.path.join(job_dir, "frames.jsonl"), encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def done_frames(job_dir) -> list[int]:
    return sorted(record["frame"] for record in frame_records(job_dir) if record["status"] == "done")


def lane(status: dict, name: str) -> dict:
    return next(item for item in status["lanes"] if item["name"] == name)


def assert_clean_output(out, frames) -> None:
    """Exactly the expected frames, each a whole image; no temporary, partial or empty file."""
    names = frame_names(out)
    assert names == [f"frame_{frame:04d}.png" for frame in frames]
    for name in names:
        assert check_image(str(out / name)) is None, name


def new_job(tmp_path, blend, **fields) -> tuple[str, object]:
    out = tmp_path / "out"
    spec = JobSpec(blend=str(blend), output_dir=str(out), device_type="CPU", **fields)
    return jobs.create_job(spec, job_dir=str(tmp_path / "job")), out


def test_kill_9_mid_frame_requeues_the_frame_and_restarts_with_backoff(slow_blend, tmp_path):
    job_dir, out = new_job(tmp_path, slow_blend, frames="1-8", cpu_lanes=2)
    result = {}
    runner = threading.Thread(target=lambda: result.update(run_job(job_dir, report=CPU_ONLY, handle_signals=False)))
    runner.start()

    def mid_frame():
        status = jobs.read_status(job_dir) or {}
        for item in status.get("lanes", []):
            if item["state"] == "rendering" and item["sample"] is not None and item["sample"] < item["samples"] * 0.6:
                return item
        return None

    victim = wait_for(mid_frame, 120, interval=0.01, what="a worker mid-frame")
    assert str(slow_blend) in " ".join(psutil.Process(victim["pid"]).cmdline())
    killed_at = time.monotonic()
    os.kill(victim["pid"], signal.SIGKILL)
    marker = f"--lane {victim['name']} "
    wait_for(
        lambda: [p for p in worker_processes(str(slow_blend)) if marker in " ".join(p.cmdline()) + " "
                 and p.pid != victim["pid"]],
        60, interval=0.01, what="the restarted worker",
    )  # fmt: skip
    restarted_after = time.monotonic() - killed_at
    runner.join(180)
    assert not runner.is_alive()

    assert restarted_after >= 0.9, f"restarted {restarted_after:.2f} s after the kill: no backoff"
    status = result
    assert status["state"] == "done" and status["frames"]["done"] == 8
    assert lane(status, victim["name"])["restarts"] == 1
    retries = [record for record in frame_records(job_dir) if record["status"] == "retry"]
    assert len(retries) == 1 and retries[0]["lane"] == victim["name"]
    assert retries[0]["error"] == "worker killed by signal 9"
    assert done_frames(job_dir) == list(range(1, 9))  # the killed frame rendered again, once
    assert_clean_output(out, range(1, 9))
    assert not psutil.pid_exists(victim["pid"]) or psutil.Process(victim["pid"]).status() == psutil.STATUS_ZOMBIE
    assert not worker_processes(str(slow_blend))


def test_crash_mid_frame_leaves_no_partial_file_and_the_frame_is_rendered_again(tiny_blend, tmp_path, monkeypatch):
    once = tmp_path / "crashed-once"
    monkeypatch.setenv("GRF_FAULT", f"crash:frame=3:once={once}")
    job_dir, out = new_job(tmp_path, tiny_blend, frames="1-6", cpu_lanes=2)
    status = run_job(job_dir, report=CPU_ONLY, handle_signals=False)
    assert once.exists(), "the fault never fired"
    retries = [record for record in frame_records(job_dir) if record["status"] == "retry"]
    assert [(record["frame"], record["error"]) for record in retries] == [(3, "worker killed by signal 11")]
    crashed = lane(status, retries[0]["lane"])
    assert crashed["restarts"] == 1 and crashed["failures"] == 1 and not crashed["blocklisted"]
    assert status["state"] == "done" and done_frames(job_dir) == list(range(1, 7))
    assert_clean_output(out, range(1, 7))  # the half-written PNG the crash left is gone


def test_cuda_error_on_two_lanes_fails_the_frame_with_the_error_and_the_job_goes_on(tiny_blend, tmp_path):
    out, job = tmp_path / "out", tmp_path / "job"
    result = run_cli("render", str(tiny_blend), "-o", str(out), "--job-dir", str(job), "--frames", "1-6",
                     "--cpu-lanes", "2", env={"GRF_FAULT": "error:frame=4"})  # fmt: skip
    assert result.returncode == cli.EXIT_FAILED, result.stderr
    status = jobs.read_status(str(job))
    assert status["state"] == "failed"
    assert list(status["failed_frames"]) == ["4"]
    assert "CUDA error: an illegal memory access" in status["failed_frames"]["4"]
    history = [record for record in frame_records(job) if record["frame"] == 4]
    assert [record["status"] for record in history] == ["retry", "failed"]
    assert len({record["lane"] for record in history}) == 2  # two different lanes
    assert done_frames(job) == [1, 2, 3, 5, 6]
    assert_clean_output(out, [1, 2, 3, 5, 6])
    assert not any(item["blocklisted"] for item in status["lanes"])
    assert "failed frame 4: CUDA error" in result.stdout


def test_lane_failing_three_times_in_a_row_is_blocklisted_and_others_take_its_frames(slow_blend, tmp_path, monkeypatch):
    monkeypatch.setenv("GRF_FAULT", "crash:lane=cpu1")  # cpu1 crashes on every frame it is given
    job_dir, out = new_job(tmp_path, slow_blend, frames="1-10", cpu_lanes=2)
    quick = SupervisorConfig(hang_timeout=600, first_frame_timeout=600, backoff_base=0.1)  # the count is the point
    status = run_job(job_dir, report=CPU_ONLY, handle_signals=False, supervisor_config=quick)
    bad, good = lane(status, "cpu1"), lane(status, "cpu0")
    assert bad["state"] == "failed" and bad["blocklisted"] and bad["failures"] == 3 and bad["restarts"] == 2
    assert bad["frames_done"] == 0 and bad["last_error"] == "worker killed by signal 11"
    assert good["frames_done"] == 10 and not good["blocklisted"]
    retries = [record for record in frame_records(job_dir) if record["status"] == "retry"]
    assert len(retries) == 3 and {record["lane"] for record in retries} == {"cpu1"}
    done = [record for record in frame_records(job_dir) if record["status"] == "done"]
    assert sorted(record["frame"] for record in done) == list(range(1, 11))
    assert {record["lane"] for record in done} == {"cpu0"}  # cpu1's frames went to cpu0
    assert status["state"] == "done"
    assert_clean_output(out, range(1, 11))
    shown = [line for line in status_table(status).splitlines() if line.startswith("cpu1")]
    assert shown and "blocklist" in shown[0]


def test_hung_worker_is_killed_after_the_hang_timeout_and_its_frame_retried(tiny_blend, tmp_path):
    out, job, once = tmp_path / "out", tmp_path / "job", tmp_path / "hung-once"
    started = time.monotonic()
    fault = {"GRF_FAULT": f"hang:frame=2:once={once}"}
    result = run_cli("render", str(tiny_blend), "-o", str(out), "--job-dir", str(job), "--frames", "1-3",
                     "--cpu-lanes", "1", "--hang-timeout", "5", env=fault)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert once.exists()
    retry = [record for record in frame_records(job) if record["status"] == "retry"]
    assert len(retry) == 1 and retry[0]["frame"] == 2
    assert retry[0]["error"].startswith("no progress for 5 s during frame 2")
    assert 5.0 <= retry[0]["end"] - retry[0]["start"] < 9.0
    assert time.monotonic() - started < 60
    status = jobs.read_status(str(job))
    assert lane(status, "cpu0")["restarts"] == 1 and status["state"] == "done"
    assert done_frames(job) == [1, 2, 3]
    assert_clean_output(out, [1, 2, 3])
    assert not worker_processes(str(tiny_blend) + " ")


def test_hang_timeout_defaults_to_600_seconds_and_reaches_the_job(tmp_path):
    args = cli.build_parser().parse_args(["render", "x.blend"])
    assert args.hang_timeout == 600.0 and cli.spec_from_args(args).hang_timeout == 600.0
    args = cli.build_parser().parse_args(["render", "x.blend", "--hang-timeout", "3"])
    spec = cli.spec_from_args(args)
    assert spec.hang_timeout == 3.0
    spec.output_dir = str(tmp_path / "out")
    from dispatcher.runner import JobRun

    run = JobRun(jobs.create_job(spec, job_dir=str(tmp_path / "job")))
    assert run.config.hang_timeout == 3.0
    run.frames_log.close()


def test_output_that_does_not_decode_is_not_counted_done(tiny_blend, tmp_path, monkeypatch):
    once = tmp_path / "garbage-once"
    monkeypatch.setenv("GRF_FAULT", f"garbage:frame=2:once={once}")  # a truncated PNG, reported "done"
    job_dir, out = new_job(tmp_path, tiny_blend, frames="1-3", cpu_lanes=1)
    status = run_job(job_dir, report=CPU_ONLY, handle_signals=False)
    assert once.exists()
    history = [(record["status"], record.get("error")) for record in frame_records(job_dir) if record["frame"] == 2]
    assert [status for status, _error in history] == ["retry", "done"], history
    assert history[0][1].startswith("output not valid: does not decode")  # Pillow's own words for the cut
    assert status["state"] == "done" and done_frames(job_dir) == [1, 2, 3]
    assert_clean_output(out, range(1, 4))


def test_fault_hook_is_inert_unless_set_and_exit_stops_start_up(tiny_blend):
    def start(lane: str, fault: str | None) -> tuple[int, list[str]]:
        env = {key: value for key, value in os.environ.items() if key != "GRF_FAULT"}
        if fault is not None:
            env["GRF_FAULT"] = fault
        argv = [sys.executable, str(WORKER), "--blend", str(tiny_blend), "--lane", lane]
        done = subprocess.run(argv, input='{"cmd": "quit"}\n', capture_output=True, text=True, env=env, timeout=120)
        return done.returncode, [json.loads(line)["event"] for line in done.stdout.splitlines()]

    # a healthy worker reports ready, then quits (0, or 6 when it sees stdin close before the quit: a race
    # the supervisor ignores once it has sent quit)
    for fault in (None, "exit:lane=cpu1"):  # no fault; another lane's fault
        code, events = start("cpu0", fault)
        assert events[0] == "ready" and code in (0, 6), (fault, code, events)
    assert start("cpu1", "exit:lane=cpu1") == (1, [])  # dies before it is ready
