"""`make package` zips: Blender's own builder agrees with them, and Blender installs and enables one."""

import importlib.util
import json
import os
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PLATFORMS = ("linux_x64", "windows_x64", "macos_arm64", "macos_x64")
DEV_ONLY = ("tests/", "tools/", "docs/", ".ci/", ".venv/", ".git/", "Makefile", "pyproject.toml", "bench/",
            "__pycache__/", ".pyc", "dist/", "build/")


def build_tool():
    spec = importlib.util.spec_from_file_location("build_package", ROOT / "tools" / "build_package.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def blender_ext_cli() -> Path | None:
    """Blender's extension command line script, as shipped inside the bpy module."""
    bpy_spec = importlib.util.find_spec("bpy")
    if bpy_spec is None or not bpy_spec.submodule_search_locations:
        return None
    found = sorted(Path(bpy_spec.submodule_search_locations[0]).glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
    return found[-1] if found else None


@pytest.fixture(scope="module")
def zips(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    return {Path(path).name: Path(path) for path in build_tool().build(output_dir=str(out))}


def manifest_of(archive: Path) -> dict:
    with zipfile.ZipFile(archive) as handle:
        data = tomllib.loads(handle.read("blender_manifest.toml").decode())
    data.update(data.pop("build", {}).get("generated", {}))  # what Blender does when it reads a split package
    return data


def test_one_zip_per_platform_with_only_its_wheels(zips):
    source = tomllib.loads((ROOT / "blender_manifest.toml").read_text())
    assert sorted(zips) == sorted(f"gpu_render_farm-{source['version']}-{p}.zip" for p in PLATFORMS)
    psutil_tags = {"linux_x64": "manylinux", "windows_x64": "win_amd64", "macos_arm64": "arm64",
                   "macos_x64": "macosx_10_9_x86_64"}
    for platform, tag in psutil_tags.items():
        archive = zips[f"gpu_render_farm-{source['version']}-{platform}.zip"]
        manifest = manifest_of(archive)
        assert manifest["platforms"] == [platform.replace("_", "-")]
        names = zipfile.ZipFile(archive).namelist()
        wheels = sorted(name for name in names if name.endswith(".whl"))
        assert [name for name in wheels if "psutil" in name] and all(tag in n for n in wheels if "psutil" in n)
        assert [name for name in wheels if "nvidia_ml_py" in name and name.endswith("none-any.whl")]
        assert sorted(w.removeprefix("./") for w in manifest["wheels"]) == wheels
        assert {"__init__.py", "preferences.py", "dispatcher/__init__.py", "dispatcher/jobs.py"} <= set(names)
        assert not [name for name in names if any(part in name for part in DEV_ONLY)]
        assert manifest["id"] == "gpu_render_farm" and manifest["type"] == "add-on"
        assert "network" not in manifest.get("permissions", {}) and manifest["permissions"]["files"]
        assert sum(info.file_size for info in zipfile.ZipFile(archive).infolist()) < 2 * 2**20


def test_same_as_blenders_split_platform_build(zips, tmp_path):
    cli = blender_ext_cli()
    if cli is None:
        pytest.skip("bpy (with Blender's extension scripts) is not installed")
    result = subprocess.run(
        [sys.executable, str(cli), "build", "--source-dir", str(ROOT), "--output-dir", str(tmp_path),
         "--split-platforms"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    theirs = {path.name: path for path in tmp_path.glob("*.zip")}
    assert sorted(theirs) == sorted(zips)
    for name, archive in zips.items():
        with zipfile.ZipFile(archive) as ours_zip, zipfile.ZipFile(theirs[name]) as their_zip:
            assert sorted(ours_zip.namelist()) == sorted(their_zip.namelist())
            assert ours_zip.read("blender_manifest.toml") == their_zip.read("blender_manifest.toml")


INSTALL = r"""
import json, subprocess, sys
import bpy
zip_path = sys.argv[-1]
result = bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default", enable_on_install=True)
name = "bl_ext.user_default.gpu_render_farm"
package = sys.modules[name]
prefs = __import__(name + ".preferences", fromlist=["x"])
jobs = __import__(name + ".dispatcher.jobs", fromlist=["x"])
refresh = bpy.ops.grf.refresh_devices()
site = bpy.utils.user_resource("EXTENSIONS", path=".local/lib/python3.11/site-packages")
probe = ("import sys; sys.path.insert(0, sys.argv[1]); import psutil, pynvml, filelock; "
         "print(psutil.__file__, pynvml.__file__, filelock.__file__)")
wheel_check = subprocess.run([sys.executable, "-c", probe, site], capture_output=True, text=True)
print("RESULT " + json.dumps({
    "install": sorted(result), "enabled": name in bpy.context.preferences.addons,
    "file": package.__file__, "panel": hasattr(bpy.types, "GRF_PT_render_farm"),
    "scene": hasattr(bpy.types.Scene, "gpu_render_farm"), "refresh": sorted(refresh),
    "prefs": type(prefs.get_preferences(bpy.context)).__name__, "jobs_root": prefs.jobs_root(prefs.get_preferences()),
    "engine_root": jobs.PACKAGE_PARENT, "wheels": wheel_check.stdout.split(), "wheel_error": wheel_check.stderr,
}))
"""


def test_linux_zip_installs_and_enables_like_a_drag_and_drop(zips, tmp_path):
    pytest.importorskip("bpy")
    if not sys.platform.startswith("linux"):
        pytest.skip("the linux-x64 package")
    archive = next(path for name, path in zips.items() if name.endswith("linux_x64.zip"))
    user = {key: str(tmp_path / key.lower()) for key in ("BLENDER_USER_RESOURCES", "BLENDER_USER_CONFIG",
                                                         "BLENDER_USER_SCRIPTS")}
    script = tmp_path / "install.py"
    script.write_text(INSTALL)
    result = subprocess.run(
        [sys.executable, str(script), str(archive)], capture_output=True, text=True, timeout=120,
        env={**os.environ, **user}, cwd=tmp_path,
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    assert result.returncode == 0 and lines, result.stdout + result.stderr
    found = json.loads(lines[-1][len("RESULT "):])
    installed = Path(user["BLENDER_USER_RESOURCES"], "extensions", "user_default", "gpu_render_farm")
    assert found["install"] == ["FINISHED"] and found["enabled"]
    assert found["file"] == str(installed / "__init__.py")
    assert found["panel"] and found["scene"] and found["refresh"] == ["FINISHED"]
    assert found["prefs"] == "GpuRenderFarmPreferences"
    assert found["jobs_root"].startswith(user["BLENDER_USER_RESOURCES"]) and found["jobs_root"].endswith("jobs")
    assert found["engine_root"] == str(installed)  # the detached dispatcher runs from the installed copy
    site = Path(user["BLENDER_USER_RESOURCES"], "extensions", ".local", "lib", "python3.11", "site-packages")
    assert len(found["wheels"]) == 3 and all(path.startswith(str(site)) for path in found["wheels"]), found
    assert not (installed / "tests").exists() and not (installed / "tools").exists()
