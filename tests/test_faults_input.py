"""Bad input: one clear line on stderr, exit code 2, nothing deleted. Awkward but valid paths just work."""

import json
import shutil

import pytest
from farmtest import build_scene, frame_names, run_cli

from dispatcher import cli, jobs
from dispatcher.images import check_image
from dispatcher.spec import JobSpec

GHOST_GPU = "GPU-00000000-dead-beef-0000-000000000000"


def snapshot(*folders) -> dict:
    """Every file under the folders with its bytes: proof that nothing was deleted or changed."""
    return {str(path): path.read_bytes() for folder in folders if folder.exists() for path in folder.rglob("*")
            if path.is_file() and path.name != "status.json"}  # fmt: skip


def bad_blend(tmp_path, tiny_blend, kind: str) -> str:
    if kind == "missing":
        return str(tmp_path / "no such file.blend")
    if kind == "folder":
        (tmp_path / "folder.blend").mkdir()
        return str(tmp_path / "folder.blend")
    path = tmp_path / f"{kind}.blend"
    if kind == "not-blend":
        path.write_text("this is a text file, not a scene\n")
    elif kind == "truncated":
        data = tiny_blend.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "no-camera":
        build_scene(path, 2, "32x32", 1, "--no-camera")
    return str(path)


CASES = {
    # id: (blend kind, extra arguments, what the error line must say)
    "missing-file": ("missing", [], "file not found"),
    "folder-not-file": ("folder", [], "is a folder"),
    "not-a-blend": ("not-blend", [], "is not a .blend file"),
    "truncated-blend": ("truncated", [], "truncated .blend"),
    "empty-frame-range": ("good", ["--frames", ","], "empty frame range"),
    "reversed-frame-range": ("good", ["--frames", "10-1"], "reversed frame range"),
    "unknown-device": ("good", ["--device", "QUANTUM"], "unknown device type 'QUANTUM'"),
    "gpu-not-there": ("good", ["--device", "CUDA", "--gpus", GHOST_GPU], "GPU"),
    "movie-pattern": ("good", ["--pattern", "shot_####.mp4"], "is a movie"),
    "movie-format": ("good", ["--format", "FFMPEG"], "not an image format"),
    "frame-past-blender": ("good", ["--frames", "1048570-2000000"], "outside what Blender renders"),
    "huge-frame-range": ("good", ["--frames", "1-99999999999999999999"], "outside what Blender renders"),
    "negative-frame-past-blender": ("good", ["--frames", "-1048575"], "outside what Blender renders"),
    "scene-without-camera": ("no-camera", [], "no camera"),
    "negative-cpu-lanes": ("good", ["--cpu-lanes", "-1"], "cpu lanes must be 0"),
    "zero-samples": ("good", ["--samples", "0"], "samples must be 1"),
    "too-many-samples": ("good", ["--samples", "99999999999"], "samples must be 1 to"),
    "too-many-threads": ("good", ["--threads", "100000"], "threads must be 1 to 1024"),
    "not-a-blender": ("good", ["--blender", "/bin/true"], "cannot read the scene"),  # the output rules ask first
    "zero-resolution": ("good", ["--resolution", "0x32"], "resolution sides"),
    "three-sided-resolution": ("good", ["--resolution", "32x32x2"], "resolution must look like"),
    "infinite-hang-timeout": ("good", ["--hang-timeout", "inf"], "timeouts must be positive"),
    "nan-hang-timeout": ("good", ["--hang-timeout", "nan"], "timeouts must be positive"),
    "empty-pattern": ("good", ["--pattern", " "], "not a usable file name"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_error_line_exit_2_and_nothing_deleted(case, tiny_blend, tmp_path):
    kind, extra, expected = CASES[case]
    blend = str(tiny_blend) if kind == "good" else bad_blend(tmp_path, tiny_blend, kind)
    out = tmp_path / "out"
    out.mkdir()
    (out / "frame_0001.png").write_bytes(b"")  # even an empty frame is the user's file until we render
    (out / ".frame_0002.png.grf-cpu0.part").write_bytes(b"partial")
    (out / "notes.txt").write_text("mine")
    before = snapshot(out, tmp_path / "job")
    blend_before = open(blend, "rb").read() if kind not in ("missing", "folder") else None
    result = run_cli("render", blend, "-o", str(out), "--job-dir", str(tmp_path / "job"), "--cpu-lanes", "1",
                     *extra, timeout=120)  # fmt: skip
    assert result.returncode == cli.EXIT_BAD_INPUT, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert expected in lines[0]
    assert "Traceback" not in result.stdout + result.stderr
    assert snapshot(out, tmp_path / "job") == before
    if blend_before is not None:
        assert open(blend, "rb").read() == blend_before


def test_job_folder_of_another_job_is_refused_and_left_alone(tiny_blend, tmp_path):
    other = jobs.create_job(JobSpec(blend=str(tiny_blend), output_dir=str(tmp_path / "theirs")),
                            job_dir=str(tmp_path / "job"))  # fmt: skip
    (tmp_path / "job" / "frames.jsonl").write_text('{"frame": 1, "status": "done"}\n')
    before = snapshot(tmp_path / "job")
    result = run_cli("render", str(tiny_blend), "-o", str(tmp_path / "mine"), "--job-dir", other)
    assert result.returncode == cli.EXIT_BAD_INPUT
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    assert "belongs to another job" in result.stderr
    assert snapshot(tmp_path / "job") == before
    assert not (tmp_path / "mine").exists() or not list((tmp_path / "mine").iterdir())


def test_resume_or_status_of_a_folder_that_is_not_a_job_exits_2(tmp_path):
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "keep.txt").write_text("x")
    for command in ("resume", "status", "cancel"):
        result = run_cli(command, str(tmp_path / "plain"))
        if command == "status":  # status of an unknown folder is informational, but must not crash
            assert result.returncode in (0, 2) and "Traceback" not in result.stderr
            continue
        assert result.returncode == cli.EXIT_BAD_INPUT, (command, result.stderr)
        assert result.stderr.startswith("error: ") and "not a job folder" in result.stderr
    assert [path.name for path in (tmp_path / "plain").iterdir()] == ["keep.txt"]


def test_paths_with_spaces_unicode_quotes_and_shell_characters_work(tiny_blend, tmp_path):
    odd = tmp_path / 'my "quoted" fïlm\'s $HOME; `echo no` & (x)'
    odd.mkdir()
    blend = odd / "scène 'ünï' \"v2\".blend"
    shutil.copy(tiny_blend, blend)
    out, job = odd / "rendû out", odd / "job dïr"
    result = run_cli("render", str(blend), "-o", str(out), "--job-dir", str(job), "--frames", "1-2",
                     "--cpu-lanes", "1", "--pattern", "shot ü '####'", "--json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert status["state"] == "done" and status["frames"]["rendered"] == 2
    names = frame_names(out)
    assert names == ["shot ü '0001'.png", "shot ü '0002'.png"]
    assert all(check_image(str(out / name)) is None for name in names)
    assert not list(tmp_path.glob("echo*")) and not (tmp_path / "no").exists()
    assert jobs.read_status(str(job))["blend"] == str(blend)


def test_a_render_refused_after_the_output_folder_was_checked_leaves_no_folder_behind(tiny_blend, tmp_path):
    out = tmp_path / "new" / "out"  # neither exists yet: the check creates both, the refusal removes both
    result = run_cli("render", str(tiny_blend), "-o", str(out), "--job-dir", str(tmp_path / "job"),
                     "--device", "CUDA", "--gpus", GHOST_GPU, timeout=120)  # fmt: skip
    assert result.returncode == cli.EXIT_BAD_INPUT and "GPU" in result.stderr, result.stderr
    assert not (tmp_path / "new").exists() and not (tmp_path / "job").exists()
