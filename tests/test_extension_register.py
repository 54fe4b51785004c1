"""The extension registers and unregisters cleanly, twice, without probing devices at start-up."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
from farmtest import load_extension

bpy = pytest.importorskip("bpy")
ROOT = Path(__file__).resolve().parent.parent
NAME = "gpu_render_farm"
OPERATORS = ("render_all", "refresh_devices", "cancel_job", "resume_job", "open_output", "play_video", "show_message",
             "prepare_gpus")




def registered() -> dict:
    return {
        "scene property": hasattr(bpy.types.Scene, "gpu_render_farm"),
        "panel": hasattr(bpy.types, "GRF_PT_render_farm"),
        "operators": [name for name in OPERATORS if hasattr(bpy.types, f"GRF_OT_{name}")],
        "load handler": any(getattr(h, "__module__", "").startswith(NAME) for h in bpy.app.handlers.load_post),
        "render menu and tab": [ours(bpy.types.TOPBAR_MT_render), ours(bpy.types.RENDER_PT_context)],
    }


def ours(ui_type) -> bool:
    """Whether a draw function of this add-on is appended to a Blender menu or panel."""
    funcs = getattr(ui_type.draw, "_draw_funcs", [])
    return any(getattr(func, "__module__", "").startswith(NAME) for func in funcs)


def test_importing_the_package_has_no_bpy_side_effects():
    """A plain import (no register) pulls in neither bpy nor the Blender-side modules."""
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location({NAME!r}, {str(ROOT / '__init__.py')!r}, "
        f"submodule_search_locations=[{str(ROOT)!r}])\n"
        "module = importlib.util.module_from_spec(spec); sys.modules[spec.name] = module\n"
        "spec.loader.exec_module(module)\n"
        "print(sorted(m for m in sys.modules if m == 'bpy' or m.startswith(spec.name + '.')))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_register_unregister_twice(monkeypatch):
    extension = load_extension()
    import pynvml

    def no_nvml():
        raise AssertionError("NVML must not be called when the add-on registers")

    monkeypatch.setattr(pynvml, "nvmlInit", no_nvml)
    for _ in range(2):
        extension.register()
        state = registered()
        assert state == {"scene property": True, "panel": True, "operators": list(OPERATORS), "load handler": True,
                         "render menu and tab": [True, True]}
        assert bpy.context.scene.gpu_render_farm.bl_rna.properties["mode"].default == "AUTO"  # the default mode
        assert bpy.ops.grf.render_all.poll()
        extension.unregister()
        assert registered() == {"scene property": False, "panel": False, "operators": [], "load handler": False,
                                "render menu and tab": [False, False]}


def test_enable_as_addon_gives_typed_preferences():
    import addon_utils

    extension = load_extension()
    preferences = importlib.import_module(f"{NAME}.preferences")
    assert isinstance(preferences.get_preferences(bpy.context), preferences.DefaultPreferences)
    addon_utils.enable(NAME, default_set=True, handle_error=None)
    try:
        prefs = preferences.get_preferences(bpy.context)
        assert isinstance(prefs, preferences.GpuRenderFarmPreferences)
        assert (prefs.device_type, prefs.backend, prefs.persistent_data) == ("AUTO", "LOCAL", True)
        # the bpy module has no Blender binary: workers run with this Python, which has bpy
        assert preferences.worker_program(prefs) == (bpy.app.binary_path or sys.executable)
        assert preferences.jobs_root(prefs).endswith("jobs")
    finally:
        addon_utils.disable(NAME, default_set=True, handle_error=None)
    assert isinstance(preferences.get_preferences(bpy.context), preferences.DefaultPreferences)
    assert not hasattr(bpy.types.Scene, "gpu_render_farm")
    del extension
