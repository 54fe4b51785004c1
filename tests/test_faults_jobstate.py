"""Damaged job state: every command that reads a job folder answers damage with one line and exit 2."""

import errno
import json
import os
import shutil
import subprocess
import sys

import pytest
from farmtest import ROOT, frame_names

from dispatcher import cli, jobs
from dispatcher.devices import DeviceReport
from dispatcher.runner import run_job
from dispatcher.spec import JobSpec

COMMANDS = {"status": [], "cancel": [], "resume": [], "encode": [], "report": []}
DAMAGE = {
    # id: (file, bytes written over it)
    "spec-not-utf8": ("spec.json", b"\xff\xfe\x00garbage\x81"),
    "spec-cut-short": ("spec.json", None),  # the first half of the real file
    "spec-a-list": ("spec.json", b"[1, 2, 3]"),
    "spec-empty": ("spec.json", b""),
    "spec-frames-a-number": ("spec.json", {"frames": 5}),
    "spec-timeout-a-word": ("spec.json", {"hang_timeout": "soon"}),
    "spec-timeout-nan": ("spec.json", {"hang_timeout": float("nan")}),
    "spec-no-blend": ("spec.json", {"blend": None}),
    "spec-per-gpu-a-list": ("spec.json", {"per_gpu": {"0": [1]}}),
    "spec-job-id-a-path": ("spec.json", {"job_id": "../../elsewhere/x"}),  # the video is named after it
    "spec-relative-output": ("spec.json", {"output_dir": "render/shot"}),
    "status-not-utf8": ("status.json", b"\x80\x81\x82"),
    "status-cut-short": ("status.json", None),
    "status-a-string": ("status.json", b'"done"'),
    "status-lanes-a-string": ("status.json", {"lanes": "cpu0"}),
    "status-frames-a-list": ("status.json", {"frames": [1, 2]}),
    "status-frame-count-a-word": ("status.json", {"frames": {"done": "many"}}),
    "status-lane-without-name": ("status.json", {"lanes": [{"name": 7}]}),
}


@pytest.fixture(scope="module")
def finished_job(tiny_blend, tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("finished")
    spec = JobSpec(blend=str(tiny_blend), output_dir=str(root / "out"), device_type="CPU", frames="1-2")
    job = jobs.create_job(spec, job_dir=str(root / "job"))
    assert run_job(job, report=DeviceReport(gpus=[], cpu={"usable_cores": 2}), handle_signals=False)["state"] == "done"
    return job


def damaged_copy(finished_job, tmp_path, case) -> str:
    job = str(tmp_path / "job")
    shutil.copytree(finished_job, job)
    name, damage = DAMAGE[case]
    path = os.path.join(job, name)
    if damage is None:
        data = open(path, "rb").read()
        damage = data[: len(data) // 2]
    elif isinstance(damage, dict):
        content = json.load(open(path, encoding="utf-8"))
        content.update(damage)
        if damage.get("blend", "") is None:
            del content["blend"]
        damage = json.dumps(content).encode()
    with open(path, "wb") as handle:
        handle.write(damage)
    return job


def snapshot(folder) -> dict:
    return {os.path.join(base, name): open(os.path.join(base, name), "rb").read()
            for base, _dirs, names in os.walk(folder) for name in names}  # fmt: skip


@pytest.mark.parametrize("case", list(DAMAGE))
@pytest.mark.parametrize("command", list(COMMANDS))
def test_damaged_job_files_are_one_line_exit_2_and_nothing_is_deleted(finished_job, tmp_path, case, command, capsys):
    if (command, DAMAGE[case][0]) in (("report", "spec.json"), ("encode", "status.json")):
        pytest.skip(f"{command} does not read {DAMAGE[case][0]}")
    job = damaged_copy(finished_job, tmp_path, case)
    before = snapshot(job)
    out = os.path.join(os.path.dirname(finished_job), "out")
    frames_before = snapshot(out)
    code = cli.main([command, job])
    captured = capsys.readouterr()
    assert code == cli.EXIT_BAD_INPUT, (captured.out, captured.err)
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "damaged" in lines[0], captured.err
    assert DAMAGE[case][0] in lines[0]
    assert snapshot(job) == before
    assert snapshot(out) == frames_before and len(frame_names(out)) == 2  # manifest and lock besides


def test_cancel_of_a_finished_job_says_it_had_finished(finished_job, tmp_path, capsys):
    job = str(tmp_path / "job")
    shutil.copytree(finished_job, job)
    before = snapshot(job)
    assert cli.main(["cancel", job]) == cli.EXIT_OK
    assert capsys.readouterr().out.strip() == "job job had already finished (done); nothing to cancel"
    assert snapshot(job) == before and not os.path.exists(os.path.join(job, "cancel.request"))


def test_status_piped_into_head_has_no_broken_pipe(finished_job, tmp_path):
    job = str(tmp_path / "job")
    shutil.copytree(finished_job, job)
    status = json.load(open(os.path.join(job, "status.json"), encoding="utf-8"))
    status["failed_frames"] = {str(frame): "x" * 200 for frame in range(5000)}  # far more than a pipe holds
    status["lanes"] = [dict(status["lanes"][0], name=f"cpu{index}") for index in range(3000)]
    with open(os.path.join(job, "status.json"), "w", encoding="utf-8") as handle:
        json.dump(status, handle)
    process = subprocess.Popen([sys.executable, "-m", "dispatcher", "status", job], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    first = process.stdout.readline()
    process.stdout.close()  # what `head -1` does
    err = process.stderr.read().decode()
    assert process.wait(timeout=60) == 0 and first.startswith(b"job ")
    assert "Traceback" not in err and "BrokenPipe" not in err, err


def test_full_disk_for_the_job_folder_is_one_line_and_leaves_nothing(tiny_blend, tmp_path, monkeypatch, capsys):
    def full(_descriptor):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    job = tmp_path / "job"
    code = cli.main(["render", str(tiny_blend), "-o", str(tmp_path / "out"), "--job-dir", str(job), "-f", "1"])
    err = capsys.readouterr().err
    assert code == cli.EXIT_BAD_INPUT
    assert err.strip() == f"error: cannot write job folder {job}: No space left on device"
    assert not job.exists()
    assert not [name for name in os.listdir(tmp_path) if name.endswith(".tmp")]


def test_encode_of_a_damaged_frame_log_is_one_line_and_a_cut_last_line_is_fine(finished_job, tmp_path, capsys):
    job = str(tmp_path / "job")
    shutil.copytree(finished_job, job)
    log = os.path.join(job, "frames.jsonl")
    lines = open(log, encoding="utf-8").read().splitlines()
    with open(log, "w", encoding="utf-8") as handle:
        handle.write("\n".join([lines[0], '["not", "a", "record"]', *lines[1:]]) + "\n")
    before = snapshot(job)
    assert cli.main(["encode", job, "--out", str(tmp_path / "a.mp4")]) == cli.EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip()
    assert err == f"error: {log} is damaged at line 2: not a frame record" and snapshot(job) == before
    with open(log, "w", encoding="utf-8") as handle:  # a crash mid-write leaves half a last line: not damage
        handle.write("\n".join(lines) + '\n{"frame": 3, "sta')
    assert cli.main(["encode", job, "--out", str(tmp_path / "b.mp4")]) == cli.EXIT_OK
    assert os.path.getsize(tmp_path / "b.mp4") > 0 and not os.path.exists(tmp_path / "a.mp4")
