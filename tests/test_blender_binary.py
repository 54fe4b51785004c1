"""Workers run by a Blender binary (`blender -b --factory-startup --disable-autoexec FILE --python worker.py`).

CI has only the bpy module, so this runs where a `blender` binary is on PATH (checked here with Debian's
Blender 3.4.1: it renders, and a file it cannot read fails with Blender's own reason).
"""

import shutil
import subprocess

import pytest
from farmtest import run_cli

from dispatcher.images import check_image

BLENDER = shutil.which("blender")
pytestmark = pytest.mark.skipif(BLENDER is None, reason="no Blender binary on PATH (CI uses the bpy module)")

SCENE = (
    "import bpy, sys; s = bpy.context.scene; s.render.engine = 'CYCLES'; s.cycles.samples = 2; "
    "s.cycles.use_denoising = False; s.render.resolution_x = s.render.resolution_y = 32; "
    "s.render.resolution_percentage = 100; s.frame_start, s.frame_end = 1, 4; "
    "bpy.ops.wm.save_as_mainfile(filepath=sys.argv[-1])"
)


def test_blender_binary_workers_render_every_frame(tmp_path):
    blend = tmp_path / "own version.blend"
    subprocess.run([BLENDER, "-b", "--factory-startup", "--python-expr", SCENE, "--", str(blend)], check=True,
                   capture_output=True, timeout=120)  # fmt: skip
    result = run_cli("render", str(blend), "-o", str(tmp_path / "out"), "--cpu-lanes", "2", "--blender", BLENDER)
    assert result.returncode == 0, result.stdout + result.stderr
    frames = sorted((tmp_path / "out").glob("frame_*.png"))
    assert len(frames) == 4 and all(check_image(str(path)) is None for path in frames)


def test_a_file_blender_cannot_read_fails_with_blenders_reason(tiny_blend, tmp_path):
    version = subprocess.run([BLENDER, "--version"], capture_output=True, text=True).stdout
    if version.startswith("Blender 5"):
        pytest.skip("this Blender reads the bpy 5.0 test scene")
    result = run_cli("render", str(tiny_blend), "-o", str(tmp_path / "out"), "--blender", BLENDER, "--cpu-lanes", "1")
    assert result.returncode == 1
    assert "Failed to read blend file" in result.stdout
