"""Pre-flight: files the scene needs, checked with Blender's own path APIs before any frame renders."""

import json
import shutil
import subprocess
import sys

import pytest
from farmtest import build_scene, run_cli
from PIL import Image

from dispatcher import cli, jobs
from dispatcher.devices import DeviceReport
from dispatcher.images import check_image
from dispatcher.runner import run_job
from dispatcher.spec import JobSpec

LINKING_SCENE = """
import sys, bpy
library, out = sys.argv[1], sys.argv[2]
bpy.ops.wm.open_mainfile(filepath=out)  # a copy of the library: same camera and lights, own meshes removed
scene = bpy.context.scene
for obj in [obj for obj in scene.objects if obj.type == "MESH"]:
    bpy.data.objects.remove(obj)
with bpy.data.libraries.load(library, link=True) as (source, target):
    target.objects = [name for name in source.objects if name.startswith(("Sphere", "Cube", "Ico", "Torus"))][:1]
for obj in target.objects:
    scene.collection.objects.link(obj)
image = bpy.data.images.new("wood", 4, 4)
image.source, image.filepath = "FILE", "//textures/wood.png"
material = bpy.data.materials.new("wood")
material.use_fake_user = True
material.use_nodes = True
material.node_tree.nodes.new("ShaderNodeTexImage").image = image
bpy.ops.wm.save_as_mainfile(filepath=out, relative_remap=True)
"""


@pytest.fixture
def linking_scene(tmp_path):
    """A scene that links an object from library.blend and uses textures/wood.png (both present)."""
    library = build_scene(tmp_path / "library.blend", 2, "32x32", 2)
    (tmp_path / "textures").mkdir()
    Image.new("RGB", (4, 4), (120, 80, 40)).save(tmp_path / "textures" / "wood.png")
    shot = tmp_path / "shot.blend"
    shutil.copy(library, shot)
    subprocess.run([sys.executable, "-c", LINKING_SCENE, str(library), str(shot)], check=True, capture_output=True,
                   timeout=120)  # fmt: skip
    return shot


def test_missing_library_and_texture_are_refused_naming_them_and_nothing_is_created(linking_scene, tmp_path):
    (tmp_path / "library.blend").rename(tmp_path / "library-moved.blend")
    (tmp_path / "textures" / "wood.png").unlink()
    out, job = tmp_path / "out", tmp_path / "job"
    result = run_cli("render", str(linking_scene), "-o", str(out), "--job-dir", str(job), "--cpu-lanes", "1",
                     "--frames", "1", timeout=120)  # fmt: skip
    assert result.returncode == cli.EXIT_BAD_INPUT, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: 2 file(s) the scene needs are missing"), result.stderr
    assert "linked library" in lines[0] and "library.blend" in lines[0] and "wood.png" in lines[0]
    assert "--allow-missing" in lines[0]
    assert not job.exists() and not list(out.glob("*.png"))


def test_allow_missing_renders_anyway(linking_scene, tmp_path):
    (tmp_path / "textures" / "wood.png").unlink()
    out = tmp_path / "out"
    result = run_cli("render", str(linking_scene), "-o", str(out), "--job-dir", str(tmp_path / "job"),
                     "--cpu-lanes", "1", "--frames", "1", "--allow-missing", "--quiet", timeout=180)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert check_image(str(out / "frame_0001.png")) is None


def test_a_library_lost_after_the_job_was_made_stops_it_before_any_frame(linking_scene, tmp_path):
    """A detached job, a resume or the extension's job: the first worker's report is checked before planning."""
    spec = JobSpec(blend=str(linking_scene), output_dir=str(tmp_path / "out"), device_type="CPU", frames="1-2")
    job = jobs.create_job(spec, job_dir=str(tmp_path / "job"))
    (tmp_path / "library.blend").unlink()
    status = run_job(job, report=DeviceReport(gpus=[], cpu={"usable_cores": 2}), handle_signals=False)
    assert status["state"] == "failed"
    assert "missing" in status["message"] and "library.blend" in status["message"]
    assert status["frames"].get("done", 0) == 0 and not list((tmp_path / "out").glob("*.png"))
    events = [json.loads(line) for line in open(f"{job}/frames.jsonl", encoding="utf-8")]
    assert not [event for event in events if event.get("status") == "done"]


def test_preflight_lists_files_through_blender(linking_scene, tmp_path):
    from dispatcher.scene_check import inspect_scene

    spec = JobSpec(blend=str(linking_scene), output_dir=str(tmp_path / "out"))
    facts = inspect_scene(spec, sys.executable)
    assert {str(tmp_path / "library.blend"), str(tmp_path / "textures" / "wood.png")} <= set(facts["files"])
    assert facts["missing"] == [] and facts["camera"] is True
    assert (facts["min_frame"], facts["max_frame"]) == (-1048574, 1048574)


def test_frames_rendered_without_a_file_are_rendered_again_once_it_is_back(linking_scene, tmp_path):
    wood = tmp_path / "textures" / "wood.png"
    wood.rename(tmp_path / "wood-aside.png")
    out = tmp_path / "out"
    args = ["-o", str(out), "--cpu-lanes", "1", "--frames", "1-2", "--quiet"]
    first = run_cli("render", str(linking_scene), *args, "--job-dir", str(tmp_path / "job1"), "--allow-missing")
    assert first.returncode == 0, first.stderr
    assert json.loads((out / ".grf-rendered-with-missing.json").read_text())["frames"] == [1, 2]
    args += ["--skip-existing"]  # Blender's default (overwrite) renders them anyway: keeping is what is at stake
    again = run_cli("render", str(linking_scene), *args, "--job-dir", str(tmp_path / "job2"), "--allow-missing")
    assert again.returncode == 0, again.stderr
    assert not open(tmp_path / "job2" / "frames.jsonl", encoding="utf-8").read()  # nothing rendered
    assert json.loads((tmp_path / "job2" / "status.json").read_text())["frames"]["kept"] == 2  # same file missing
    (tmp_path / "wood-aside.png").rename(wood)  # the texture is back: the wrong frames must not be kept
    fixed = run_cli("render", str(linking_scene), *args, "--job-dir", str(tmp_path / "job3"))
    assert fixed.returncode == 0, fixed.stderr
    records = [json.loads(line) for line in open(tmp_path / "job3" / "frames.jsonl", encoding="utf-8")]
    assert sorted(record["frame"] for record in records if record["status"] == "done") == [1, 2]
    assert not (out / ".grf-rendered-with-missing.json").exists()


def test_resume_after_a_library_was_lost_is_one_line_exit_2(linking_scene, tmp_path):
    spec = JobSpec(blend=str(linking_scene), output_dir=str(tmp_path / "out"), device_type="CPU", frames="1")
    job = jobs.create_job(spec, job_dir=str(tmp_path / "job"))
    (tmp_path / "library.blend").unlink()
    for detach in ([], ["--detach"]):
        result = run_cli("resume", job, *detach, timeout=120)
        assert result.returncode == cli.EXIT_BAD_INPUT, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "missing" in lines[0] and "library.blend" in lines[0]
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())
