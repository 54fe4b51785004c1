"""Every file a frame makes: compositor File Output nodes and stereo views, named as Blender names them,
renamed into place only when all of them decode (real bpy renders)."""

import json
import os
import subprocess
import sys
import tempfile

import pytest
from farmtest import run_cli

from dispatcher.frame_checks import FrameCheck, check_files
from dispatcher.images import check_image

EXTRA_OUTPUTS = """
import os, sys, bpy
source, out, stereo = sys.argv[1], sys.argv[2], sys.argv[3] == "stereo"
bpy.ops.wm.open_mainfile(filepath=source)
scene = bpy.context.scene
tree = bpy.data.node_groups.new("compositing", "CompositorNodeTree")
scene.compositing_node_group = tree
layers = tree.nodes.new("CompositorNodeRLayers")
tree.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
tree.links.new(layers.outputs["Image"], tree.nodes.new("NodeGroupOutput").inputs[0])
extra = tree.nodes.new("CompositorNodeOutputFile")
extra.directory, extra.file_name = os.environ.get("EXTRA_DIR", "//extra/"), "extra_"
extra.format.media_type, extra.format.file_format = "IMAGE", "OPEN_EXR"
extra.file_output_items.new("RGBA", "Image")
tree.links.new(layers.outputs["Image"], extra.inputs[0])
scene.render.use_compositing = True
if stereo:
    scene.render.use_multiview, scene.render.views_format = True, "STEREO_3D"
bpy.ops.wm.save_as_mainfile(filepath=out)
if len(sys.argv) > 4:  # Blender's own animation render, for the names it gives
    scene.render.filepath = sys.argv[4] + "/frame_####"
    scene.frame_start, scene.frame_end = 1, 2
    bpy.ops.render.render(animation=True)
"""


def build(tiny_blend, folder, stereo=False, reference=None, extra_dir="//extra/"):
    folder.mkdir(parents=True, exist_ok=True)
    blend = folder / "shot.blend"
    args = [str(tiny_blend), str(blend), "stereo" if stereo else "mono", *([str(reference)] if reference else [])]
    subprocess.run([sys.executable, "-c", EXTRA_OUTPUTS, *args], check=True, capture_output=True, timeout=300,
                   env={**os.environ, "EXTRA_DIR": extra_dir})  # fmt: skip
    return blend


def names(folder):  # the folder's own files (manifest, lock: output_guard.FOLDER_FILES) left out
    from dispatcher.output_guard import FOLDER_FILES

    return sorted(path for path in os.listdir(folder) if path not in FOLDER_FILES) if os.path.isdir(folder) else []


@pytest.mark.parametrize("stereo", [False, True], ids=["file-output-node", "stereo-and-file-output-node"])
def test_every_file_a_frame_makes_is_named_as_blender_names_it(tiny_blend, tmp_path, stereo):
    build(tiny_blend, tmp_path / "blender", stereo, reference=tmp_path / "blender" / "out")
    farm = build(tiny_blend, tmp_path / "farm", stereo)
    out = tmp_path / "farm" / "out"
    result = run_cli("render", str(farm), "-o", str(out), "--job-dir", str(tmp_path / "job"), "--frames", "1-2",
                     "--cpu-lanes", "2", "--quiet", timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert names(tmp_path / "farm" / "extra") == names(tmp_path / "blender" / "extra")  # extra_Image0001.exr ...
    assert names(out) == names(tmp_path / "blender" / "out")  # frame_0001.png, or frame_0001_L.png and _R
    assert len(names(out)) == (4 if stereo else 2) and len(names(tmp_path / "farm" / "extra")) == (4 if stereo else 2)
    for folder in (out, tmp_path / "farm" / "extra"):
        assert all(check_image(str(folder / name)) is None for name in names(folder))
    extras = [(tmp_path / "farm" / "extra" / name).read_bytes() for name in names(tmp_path / "farm" / "extra")]
    assert len(set(extras)) == len(extras)  # one file per frame (and view), not one overwritten by every frame
    leftovers = [os.path.join(base, name) for base, dirs, files in os.walk(tmp_path / "farm")
                 for name in dirs + files if ".grf-" in name]  # fmt: skip
    assert sorted(os.path.basename(path) for path in leftovers) == [".grf-manifest.jsonl", ".grf-output.lock"]


def test_a_frame_missing_one_of_its_files_is_rendered_again_on_resume(tiny_blend, tmp_path):
    farm = build(tiny_blend, tmp_path / "farm")
    out, job = tmp_path / "farm" / "out", tmp_path / "job"
    args = ["-o", str(out), "--job-dir", str(job), "--frames", "1-2", "--cpu-lanes", "1", "--quiet"]
    assert run_cli("render", str(farm), *args, timeout=600).returncode == 0
    (tmp_path / "farm" / "extra" / "extra_Image0002.exr").unlink()  # frame 2's main image is still there
    kept = (out / "frame_0001.png").stat().st_mtime_ns
    result = run_cli("resume", str(job), timeout=600)
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in open(job / "frames.jsonl", encoding="utf-8")]
    assert [(record["frame"], record["status"]) for record in records[2:]] == [(2, "done")]  # no "skipped" lines
    assert check_image(str(tmp_path / "farm" / "extra" / "extra_Image0002.exr")) is None
    assert (out / "frame_0001.png").stat().st_mtime_ns == kept


def test_a_file_output_node_writing_where_nothing_can_be_written_is_refused_before_the_start(tiny_blend, tmp_path):
    target = "/sys/grf-extra" if os.geteuid() == 0 else "/proc/grf-extra"  # cannot be created, even by root
    farm = build(tiny_blend, tmp_path / "farm", extra_dir=target)
    result = run_cli("render", str(farm), "-o", str(tmp_path / "out"), "--job-dir", str(tmp_path / "job"),
                     "--frames", "1", "--cpu-lanes", "1", timeout=300)  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: a compositor File Output node writes to {target}, which cannot be created")
    assert result.stderr.count("\n") == 1 and not (tmp_path / "job").exists()


def test_no_file_of_a_frame_is_renamed_unless_every_one_decodes(tmp_path):
    good, bad = tmp_path / ".a.part", tmp_path / ".b.part"
    from PIL import Image

    Image.new("RGB", (4, 4)).save(good, format="PNG")
    bad.write_bytes(b"\x89PNG\r\n\x1a\n")
    files = [[str(good), str(tmp_path / "frame_0001.png")], [str(bad), str(tmp_path / "extra_0001.png")]]
    check = check_files(FrameCheck(1, "cpu0", 1, files))
    assert check.problem and "extra_0001.png" in check.problem
    assert names(tmp_path) == [".a.part", ".b.part"]  # the check renames nothing; the supervisor removes both


def test_a_worker_shipped_to_a_ray_node_brings_the_scripts_it_loads(tmp_path, monkeypatch):
    """A node without the dispatcher's files runs a cached copy: the scripts worker.py loads by path go with it."""
    from dispatcher import ray_actor, ray_backend
    from dispatcher.process import WORKER_SCRIPT

    worker = ray_actor.worker_sources(WORKER_SCRIPT, ray_backend.WORKER_SIBLINGS)
    assert ray_actor._local_worker_script(worker) == WORKER_SCRIPT  # the files are visible here: used as they are
    monkeypatch.setattr(tempfile, "gettempdir", lambda: str(tmp_path))  # where the node keeps its copy
    elsewhere = dict(worker, path="/nonexistent/dispatcher/blender_scripts/worker.py")
    copy = ray_actor._local_worker_script(elsewhere)
    assert copy.startswith(str(tmp_path)) and names(os.path.dirname(copy)) == sorted(
        ["worker.py", "preflight_scene.py", "frame_outputs.py"])  # fmt: skip
    for name, text in [("worker.py", worker["source"]), *worker["siblings"].items()]:
        assert open(os.path.join(os.path.dirname(copy), name), encoding="utf-8").read() == text


def test_the_end_of_a_job_leaves_the_file_output_folders_of_another_jobs_live_worker(tmp_path):
    """File Output folders are not locked: two jobs may write one; each removes only its own (dead) workers'."""
    import subprocess

    from dispatcher.frame_files import remove_temp_folders

    ended = subprocess.Popen(["true"])  # noqa: S607
    ended.wait()
    live = tmp_path / f".grf-cpu0-p{os.getpid()}-0-7"
    dead, old = tmp_path / f".grf-cpu0-p{ended.pid}-0-7", tmp_path / ".grf-cpu0-0"
    for folder in (live, dead, old):
        folder.mkdir()
        (folder / "extra_0007.exr").write_bytes(b"v")
    remove_temp_folders(str(tmp_path / "out"), [str(tmp_path)])
    assert live.exists() and not dead.exists() and not old.exists()
