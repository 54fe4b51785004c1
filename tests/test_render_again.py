"""Render again means render again: Blender's output rules, job identity, one writer per folder (real bpy, CPU)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys

from farmtest import ROOT, frame_names, run_cli, wait_for, worker_processes
from PIL import Image

from dispatcher import jobs
from dispatcher.images import check_image

EDIT = ROOT / "tests" / "edit_scene.py"


def edit(blend, *args: str) -> None:
    """Change the saved scene as an artist would (tests/edit_scene.py with the real bpy)."""
    subprocess.run([sys.executable, str(EDIT), str(blend), *args], check=True, capture_output=True, timeout=120)


def shot(tmp_path, tiny_blend, folder: str = "shot", *args: str):
    """A copy of the tiny scene whose output path is its own //frames/f_####."""
    (tmp_path / folder).mkdir(parents=True)
    blend = tmp_path / folder / "shot.blend"
    shutil.copy(tiny_blend, blend)
    edit(blend, "--filepath", "//frames/f_####", *args)
    return blend


def render(*args: str, timeout: float = 300):
    result = run_cli("render", *args, "--cpu-lanes", "1", "--json", timeout=timeout)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def pixels(path) -> bytes:
    with Image.open(path) as image:
        return image.convert("RGB").tobytes()


def records(job_dir) -> list[dict]:
    with open(os.path.join(job_dir, "frames.jsonl"), encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def test_edit_the_scene_and_render_again_changes_the_pixels(tiny_blend, tmp_path):
    blend = shot(tmp_path, tiny_blend)
    first = render(str(blend), "--frames", "1-2")
    frames = tmp_path / "shot" / "frames"  # where `blender -b shot.blend -a` puts them: //frames/f_####
    assert first["output_dir"] == str(frames) and frame_names(frames) == ["f_0001.png", "f_0002.png"]
    before = {name: pixels(frames / name) for name in frame_names(frames)}
    edit(blend, "--world", "0.9,0.2,0.1")  # the artist changes the lighting and saves
    again = render(str(blend), "--frames", "1-2")
    assert again["state"] == "done" and again["frames"]["rendered"] == 2 and again["frames"]["kept"] == 0
    for name in frame_names(frames):
        assert check_image(str(frames / name)) is None
        assert pixels(frames / name) != before[name], f"{name} still shows the old scene"
    # resume of the finished job: nothing rendered, no worker, frames.jsonl does not grow
    lines = len(records(again["job_dir"]))
    resumed = run_cli("resume", again["job_dir"], "--json")
    assert resumed.returncode == 0, resumed.stderr
    status = json.loads(resumed.stdout)
    assert status["state"] == "done" and status["frames"]["rendered"] == 0 and status["frames"]["done_before"] == 2
    assert status["lanes"] == [] and len(records(again["job_dir"])) == lines


def test_two_different_files_of_the_same_name_and_the_scenes_overwrite_setting(tiny_blend, tmp_path):
    shared = tmp_path / "shared"
    first = shot(tmp_path, tiny_blend, "a", "--filepath", f"{shared}/f_####")
    second = shot(tmp_path, tiny_blend, "b", "--filepath", f"{shared}/f_####", "--world", "0.1,0.8,0.2")
    job_a = render(str(first), "--frames", "1-2")
    a_pixels = pixels(shared / "f_0001.png")
    job_b = render(str(second), "--frames", "1-2")  # same name, same folder, another file: rendered, not skipped
    assert job_b["frames"]["rendered"] == 2 and job_b["frames"]["kept"] == 0
    assert pixels(shared / "f_0001.png") != a_pixels
    # the artist turns Overwrite off in a's scene: existing frames are kept, and the summary says whose
    edit(first, "--overwrite", "0")
    kept = render(str(first), "--frames", "1-2")
    assert kept["frames"]["rendered"] == 0 and kept["frames"]["kept"] == 2
    assert kept["message"] == (
        f"kept 2 existing frame(s) instead of rendering them: 2 from job {job_b['job_id']} "
        f"(another .blend: {second})"
    )
    assert job_a["job_id"] not in kept["message"]
    forced = render(str(first), "--frames", "1-2", "--overwrite")  # the command line overrides the scene
    assert forced["frames"]["rendered"] == 2 and pixels(shared / "f_0001.png") == a_pixels


def test_file_extensions_off_and_placeholders_follow_the_scene(tiny_blend, tmp_path):
    blend = shot(tmp_path, tiny_blend, "shot", "--extension", "0", "--placeholder", "1")
    status = render(str(blend), "--frames", "3")
    frames = tmp_path / "shot" / "frames"
    assert frame_names(frames) == ["f_0003"] and check_image(str(frames / "f_0003")) is None
    assert jobs.load_spec(status["job_dir"]).placeholders is True


def test_two_renders_at_once_into_one_folder_each_frame_once(slow_blend, tmp_path):
    out, job_a = tmp_path / "out", tmp_path / "job-a"
    argv = [sys.executable, "-m", "dispatcher", "render", str(slow_blend), "-o", str(out), "--job-dir", str(job_a),
            "--frames", "1-6", "--cpu-lanes", "1"]  # fmt: skip
    first = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: list(out.glob("frame_*.png")), 120, what="the first job's first frame")
        refused = run_cli("render", str(slow_blend), "-o", str(out), "--frames", "1-6", "--cpu-lanes", "1")
        assert refused.returncode == 2
        assert refused.stderr.strip().splitlines() == [
            f"error: output folder {out} is being written by job job-a, pid {first.pid}; "
            "wait for it, cancel it, or add --queue to start when it is done"
        ]
        queued = run_cli("render", str(slow_blend), "-o", str(out), "--frames", "1-6", "--cpu-lanes", "1",
                         "--queue", "--skip-existing", "--job-dir", str(tmp_path / "job-b"), "--json")  # fmt: skip
        assert first.wait(60) == 0
    finally:
        if first.poll() is None:
            first.kill()
    assert queued.returncode == 0, queued.stderr
    status = json.loads(queued.stdout)
    assert status["frames"]["rendered"] == 0 and status["frames"]["kept"] == 6
    assert status["kept_from"] == {"job job-a (same file and settings)": 6}
    done = [r["frame"] for job in (job_a, tmp_path / "job-b") for r in records(job) if r["status"] == "done"]
    assert sorted(done) == list(range(1, 7)), "each frame rendered once across both jobs"
    assert frame_names(out) == [f"frame_{frame:04d}.png" for frame in range(1, 7)]
    assert all(check_image(str(out / name)) is None for name in frame_names(out))


def test_lock_holder_killed_with_kill_9_the_next_render_proceeds(slow_blend, tmp_path):
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "dispatcher", "render", str(slow_blend), "-o", str(out), "--frames", "1-12",
            "--cpu-lanes", "1"]  # fmt: skip
    holder = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: list(out.glob("frame_*.png")), 120, what="a first frame")
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(10)
    wait_for(lambda: not worker_processes(str(slow_blend)), 15, what="the orphaned worker to exit")
    status = render(str(slow_blend), "-o", str(out), "--frames", "1-2", "--samples", "4")
    assert status["state"] == "done" and status["frames"]["rendered"] == 2


def test_two_resume_detach_at_once_only_one_runs(slow_blend, tmp_path):
    out, job = tmp_path / "out", tmp_path / "job"
    started = run_cli("render", str(slow_blend), "-o", str(out), "--job-dir", str(job), "--frames", "1-8",
                      "--cpu-lanes", "1", "--detach")  # fmt: skip
    assert started.returncode == 0, started.stderr
    wait_for(lambda: list(out.glob("frame_*.png")), 120, what="a first frame")
    assert run_cli("cancel", str(job)).returncode == 0
    wait_for(lambda: not jobs.is_running(str(job)), 30, what="the job to stop")
    argv = [sys.executable, "-m", "dispatcher", "resume", str(job), "--detach"]
    both = [subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)]  # fmt: skip
    results = [(process.wait(60), *process.communicate()) for process in both]
    wait_for(lambda: (jobs.read_status(str(job)) or {}).get("state") == "done" and not jobs.is_running(str(job)),
             180, what="the resumed job to finish")  # fmt: skip
    done = [record["frame"] for record in records(job) if record["status"] == "done"]
    assert sorted(done) == list(range(1, 9)), f"a frame was rendered twice: {sorted(done)}"
    with open(job / "logs" / "dispatcher.log", encoding="utf-8", errors="replace") as handle:
        log = handle.read()
    refusals = log.count(f"error: job {job.name} is already running")
    refusals += sum(1 for code, _out, err in results if code == 2 and "still running" in err)
    assert refusals == 1, (results, log[-2000:])
    assert not worker_processes(str(slow_blend))



def test_placeholders_mark_frames_being_rendered_and_none_is_left_after_a_cancel(slow_blend, tmp_path):
    blend = tmp_path / "placeholders.blend"
    shutil.copy(slow_blend, blend)
    edit(blend, "--placeholder", "1")
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "dispatcher", "render", str(blend), "-o", str(out), "--frames", "1-12",
            "--cpu-lanes", "1"]  # fmt: skip
    process = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        empty = wait_for(lambda: [path for path in out.glob("frame_*.png") if path.stat().st_size == 0], 120,
                         interval=0.01, what="an empty placeholder for the frame being rendered")  # fmt: skip
        assert len(empty) == 1  # one lane: one frame in flight
        wait_for(lambda: check_image(str(empty[0])) is None, 60, what="the placeholder to become the frame")
        process.send_signal(signal.SIGINT)
        assert process.wait(30) == 130
    finally:
        if process.poll() is None:
            process.kill()
    assert not [path.name for path in out.glob("frame_*.png") if check_image(str(path)) is not None]


def test_a_queued_job_is_listed_and_cancel_ends_it_while_the_writer_goes_on(slow_blend, tmp_path):
    out, writer, waiting = tmp_path / "out", tmp_path / "writer", tmp_path / "waiting"
    argv = [sys.executable, "-m", "dispatcher", "render", str(slow_blend), "-o", str(out), "--job-dir", str(writer),
            "--frames", "1-10", "--cpu-lanes", "1"]  # fmt: skip
    first = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: list(out.glob("frame_*.png")), 120, what="the writer's first frame")
        queued = run_cli("render", str(slow_blend), "-o", str(out), "--job-dir", str(waiting), "--frames", "1-10",
                         "--cpu-lanes", "1", "--queue", "--detach")  # fmt: skip
        assert queued.returncode == 0, queued.stderr
        wait_for(lambda: (jobs.read_status(str(waiting)) or {}).get("state") == "queued", 60, what="queued")
        assert jobs.read_status(str(waiting)).phase == "Waiting for job writer, pid " + str(first.pid) + (
            " to finish writing the output folder")
        rows = {row["job_id"]: row for row in json.loads(run_cli("jobs", "--json").stdout)}
        assert rows["writer"]["state"] == "running" and rows["waiting"]["state"] == "queued"
        assert rows["waiting"]["output"] == str(out)
        cancelled = run_cli("cancel", str(waiting))
        assert cancelled.returncode == 0, cancelled.stdout + cancelled.stderr
        assert jobs.read_status(str(waiting)).state == "cancelled" and first.poll() is None
        assert first.wait(120) == 0
    finally:
        if first.poll() is None:
            first.kill()
    assert not records(waiting) and sorted(r["frame"] for r in records(writer) if r["status"] == "done") == list(
        range(1, 11))
