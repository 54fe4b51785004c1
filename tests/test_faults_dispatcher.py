"""The dispatcher dies (kill -9): workers exit on their own; the next run renders only what is missing or invalid."""

import json
import os
import signal
import subprocess
import sys

import psutil
from farmtest import ROOT, frame_names, run_cli, wait_for, worker_processes

from dispatcher import jobs
from dispatcher.devices import DeviceReport
from dispatcher.images import check_image
from dispatcher.runner import run_job
from dispatcher.spec import JobSpec


def frame_records(job_dir) -> list[dict]:
    with open(os.path.join(job_dir, "frames.jsonl"), encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def test_dispatcher_kill_9_workers_exit_and_resume_renders_only_missing_or_invalid(slow_blend, tmp_path):
    out, job = tmp_path / "out", tmp_path / "job"
    argv = [sys.executable, "-m", "dispatcher", "render", str(slow_blend), "-o", str(out), "--job-dir", str(job),
            "--frames", "1-10", "--cpu-lanes", "2", "--samples", "32"]  # fmt: skip
    dispatcher = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: len(list(out.glob("frame_*.png"))) >= 3, 120, what="three finished frames")
    workers = wait_for(lambda: len(worker_processes(str(slow_blend))) == 2 and worker_processes(str(slow_blend)),
                       60, what="two workers")  # fmt: skip
    assert all(worker.ppid() == dispatcher.pid for worker in workers)
    dispatcher.send_signal(signal.SIGKILL)
    dispatcher.wait(10)

    def gone(pid: int) -> bool:
        try:
            return psutil.Process(pid).status() in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
        except psutil.NoSuchProcess:
            return True

    wait_for(lambda: all(gone(worker.pid) for worker in workers), 10, what="orphaned workers to exit")
    assert not worker_processes(str(slow_blend))
    assert not jobs.is_running(str(job))
    assert "dispatcher not running" in run_cli("status", str(job)).stdout

    finished = sorted(out.glob("frame_*.png"))
    assert all(check_image(str(path)) is None for path in finished)
    assert 3 <= len(finished) < 10
    # what a crash can leave behind: a stale temporary file, an empty frame, a cut-off frame
    stale = out / ".frame_0010.png.grf-cpu1.part"
    stale.write_bytes(b"\x89PNG\r\n\x1a\n partial")
    empty, cut = finished[0], finished[1]
    empty.write_bytes(b"")
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])
    kept = {path.name: path.stat().st_mtime_ns for path in finished[2:]}
    before = len(frame_records(job))

    resumed = run_cli("resume", str(job), "--json")
    assert resumed.returncode == 0, resumed.stderr
    status = json.loads(resumed.stdout)
    assert status["state"] == "done" and status["frames"]["done"] == 10
    assert status["frames"]["done_before"] == len(kept) and status["frames"]["rendered"] == 10 - len(kept)
    assert status["frames"]["kept"] == 0  # the job's own intact frames are done, not "kept" from elsewhere
    second = frame_records(job)[before:]
    rerendered = sorted(record["frame"] for record in second if record["status"] == "done")
    kept_frames = {int(name[len("frame_"):-len(".png")]) for name in kept}
    assert rerendered == sorted(set(range(1, 11)) - kept_frames)  # only missing or damaged frames, each once
    assert int(empty.stem[-4:]) in rerendered and int(cut.stem[-4:]) in rerendered
    assert {path.name: path.stat().st_mtime_ns for path in out.glob("frame_*.png") if path.name in kept} == kept
    assert frame_names(out) == [f"frame_{frame:04d}.png" for frame in range(1, 11)]
    assert all(check_image(str(out / name)) is None for name in frame_names(out))
    assert not worker_processes(str(slow_blend))


def test_preexisting_empty_or_truncated_frames_are_rendered_not_skipped(tiny_blend, tmp_path):
    """With --skip-existing (or the scene's Overwrite off) valid frames are kept; broken ones never are."""
    out = tmp_path / "out"
    first = jobs.create_job(JobSpec(blend=str(tiny_blend), output_dir=str(out), device_type="CPU", frames="1-4"),
                            job_dir=str(tmp_path / "first"))  # fmt: skip
    assert (
        run_job(first, report=DeviceReport(gpus=[], cpu={"usable_cores": 2}), handle_signals=False)["state"] == "done"
    )
    good = out / "frame_0001.png"
    (out / "frame_0002.png").write_bytes(b"")  # Blender's placeholder after a crash
    truncated = (out / "frame_0003.png").read_bytes()
    (out / "frame_0003.png").write_bytes(truncated[:-20])  # lost its IEND
    (out / "frame_0004.png").write_bytes(b"\xff\xd8 not a png at all")
    stale = out / ".frame_0005.png.grf-cpu0.part"
    stale.write_bytes(b"leftover")
    stamp = good.stat().st_mtime_ns

    result = run_cli("render", str(tiny_blend), "-o", str(out), "--frames", "1-5", "--cpu-lanes", "1",
                     "--job-dir", str(tmp_path / "second"), "--json", "--skip-existing")  # fmt: skip
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert status["frames"]["kept"] == 1 and status["frames"]["rendered"] == 4
    assert status["message"] == ("kept 1 existing frame(s) instead of rendering them: "
                                 "1 from job first (same file and settings)")
    records = frame_records(tmp_path / "second")
    assert sorted(r["frame"] for r in records if r["status"] == "done") == [2, 3, 4, 5]
    assert status["kept_from"] == {"job first (same file and settings)": 1}
    assert good.stat().st_mtime_ns == stamp
    assert frame_names(out) == [f"frame_{frame:04d}.png" for frame in range(1, 6)]
    assert all(check_image(str(out / name)) is None for name in frame_names(out))
