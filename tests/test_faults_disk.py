"""Disk faults: a missing output folder is created; an unwritable or full one stops the job, keeping finished frames."""

import os
import shutil
from collections import namedtuple

from farmtest import frame_names, run_cli, worker_processes

from dispatcher import cli, jobs
from dispatcher.devices import DeviceReport
from dispatcher.images import check_image
from dispatcher.runner import run_job
from dispatcher.spec import JobSpec
from dispatcher.status_text import status_table

CPU_ONLY = DeviceReport(gpus=[], cpu={"usable_cores": 2})
Usage = namedtuple("Usage", "total used free")


def test_missing_output_folder_is_created(tiny_blend, tmp_path):
    out = tmp_path / "not" / "yet" / "there"
    spec = JobSpec(blend=str(tiny_blend), output_dir=str(out), device_type="CPU", frames="1-2")
    status = run_job(jobs.create_job(spec, job_dir=str(tmp_path / "job")), report=CPU_ONLY, handle_signals=False)
    assert status["state"] == "done"
    assert frame_names(out) == ["frame_0001.png", "frame_0002.png"]


def test_unwritable_output_folder_is_refused_with_a_clear_message(tiny_blend, tmp_path):
    if os.geteuid() == 0:  # root writes through file modes; sysfs refuses new files even to root
        target = "/sys"
    else:
        target = str(tmp_path / "read-only")
        os.mkdir(target, 0o555)
    before = sorted(os.listdir(target))
    result = run_cli("render", str(tiny_blend), "-o", target, "--job-dir", str(tmp_path / "job"), "--cpu-lanes", "1")
    assert result.returncode == cli.EXIT_BAD_INPUT
    assert result.stderr.strip() == f"error: output folder {target} is not writable: Permission denied"
    assert sorted(os.listdir(target)) == before
    assert not (tmp_path / "job").exists()


def test_full_disk_before_the_start_is_refused(tiny_blend, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(shutil, "disk_usage", lambda path: Usage(10 * 2**30, 10 * 2**30 - 2**20, 2**20))
    code = cli.main(["render", str(tiny_blend), "-o", str(tmp_path / "out"), "--job-dir", str(tmp_path / "job")])
    assert code == cli.EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.startswith("error: output folder") and "full disk" in err and err.count("\n") == 1
    assert not (tmp_path / "job").exists()


def test_disk_filling_up_mid_job_stops_it_and_keeps_every_finished_frame(slow_blend, tmp_path, monkeypatch):
    out = tmp_path / "out"
    real = shutil.disk_usage

    def disk_usage(path):
        if len(list(out.glob("frame_*.png"))) >= 2:  # the disk fills up once two frames are written
            return Usage(10 * 2**30, 10 * 2**30 - 2**20, 2**20)
        return real(path)

    monkeypatch.setattr(shutil, "disk_usage", disk_usage)
    spec = JobSpec(blend=str(slow_blend), output_dir=str(out), device_type="CPU", cpu_lanes=1, frames="1-24")
    status = run_job(jobs.create_job(spec, job_dir=str(tmp_path / "job")), report=CPU_ONLY, handle_signals=False)
    assert status["state"] == "failed"
    assert status["message"] == f"output disk is full ({out}); finished frames are kept"
    kept = [out / name for name in frame_names(out)]
    assert 2 <= len(kept) < 24 and status["frames"]["done"] == len(kept)
    assert all(path.name.startswith("frame_") and check_image(str(path)) is None for path in kept)
    assert not worker_processes(str(slow_blend))
    assert status_table(status).endswith("finished frames are kept")


def test_output_folder_lost_mid_job_stops_the_job_blaming_no_lane_and_resume_finishes(slow_blend, tmp_path):
    """A disk problem is the job's: no lane blocklisted, no frame failed, one message; resume continues."""
    import json
    import threading

    from farmtest import wait_for

    out, aside = tmp_path / "out", tmp_path / "out-aside"
    spec = JobSpec(blend=str(slow_blend), output_dir=str(out), device_type="CPU", cpu_lanes=2, frames="1-12")
    job = jobs.create_job(spec, job_dir=str(tmp_path / "job"))
    result = {}
    runner = threading.Thread(target=lambda: result.update(run_job(job, report=CPU_ONLY, handle_signals=False)))
    runner.start()
    wait_for(lambda: len(list(out.glob("frame_*.png"))) >= 2, timeout=300, what="two frames")
    out.rename(aside)
    out.write_text("a file where the output folder was")  # unwritable for root too: not a directory
    runner.join(300)
    assert result["state"] == "failed", result["message"]
    assert result["message"].startswith(f"output folder {out} is not writable: Not a directory")
    assert result["message"].endswith("fix it and resume")
    assert result["failed_frames"] == {} and result["frames"]["failed"] == 0
    assert not any(lane["blocklisted"] for lane in result["lanes"])
    records = [json.loads(line) for line in open(f"{job}/frames.jsonl", encoding="utf-8")]
    assert not [record for record in records if record["status"] in ("failed", "retry")]
    assert not worker_processes(str(slow_blend))
    out.unlink()
    aside.rename(out)
    kept = {path.name: path.stat().st_mtime_ns for path in out.glob("frame_*.png")}
    jobs.prepare_resume(job)
    status = run_job(job, report=CPU_ONLY, handle_signals=False)
    assert status["state"] == "done" and status["frames"]["done"] == 12
    assert frame_names(out) == [f"frame_{frame:04d}.png" for frame in range(1, 13)]
    assert all(check_image(str(out / name)) is None for name in frame_names(out))
    assert all(out.joinpath(name).stat().st_mtime_ns == mtime for name, mtime in kept.items())
