"""Which cards have compiled Cycles kernels: Blender's shipped cubins (the real bpy 5.0.1 wheel), and the
farm's markers keyed by kernels, compute capability, driver and device type."""

import sys

import pytest
from test_supervisor import Rig

from dispatcher import kernels, prepare
from dispatcher.devices import DeviceReport, Gpu
from dispatcher.lanes import Lane


def card(index, capability, name="NVIDIA H100 80GB HBM3"):
    return Gpu(index, name, f"GPU-{index}", f"00000000:0{index}:00.0", 81559, 80000, compute_capability=capability)


@pytest.fixture
def lib(tmp_path):
    folder = tmp_path / "bpy" / "5.0" / "scripts" / "addons_core" / "cycles" / "lib"
    folder.mkdir(parents=True)
    for name in ("kernel_sm_86.cubin.zst", "kernel_sm_89.cubin.zst", "kernel_compute_75.ptx.zst"):
        (folder / name).write_bytes(b"x" * 10)
    return str(folder)


def test_the_real_bpy_wheel_ships_no_sm_90_kernels():
    lib_dir = kernels.cycles_lib_dir(sys.executable)  # this Python has bpy 5.0.1
    assert lib_dir and lib_dir.endswith("cycles/lib")
    shipped = kernels.shipped_capabilities(lib_dir)
    assert (8, 6) in shipped and (7, 5) in shipped
    assert (9, 0) not in shipped and (8, 0) not in shipped  # H100/H200 and A100 compile on first use
    assert kernels.kernels_id(lib_dir).startswith("5.0-ptx")


def test_shipped_cubin_means_compiled_and_a_marker_covers_the_rest(lib, tmp_path):
    env = {"CUDA_CACHE_PATH": str(tmp_path / "cache")}
    report = DeviceReport(gpus=[card(0, (8, 6), "RTX 3090"), card(1, (9, 0)), card(2, None)], driver="580.159.04")
    statuses = kernels.kernel_status(report, device_type="OPTIX", lib_dir=lib, env=env)
    assert [status["compiled"] for status in statuses] == [True, False, None]
    assert "ships sm_86" in statuses[0]["why"] and "6-8 minutes" in statuses[1]["why"]
    assert [status["index"] for status in kernels.uncompiled(statuses)] == [1]
    kernels.mark_compiled(env["CUDA_CACHE_PATH"], kernels.kernels_id(lib), (9, 0), "580.159.04", "OPTIX")
    assert kernels.kernel_status(report, device_type="OPTIX", lib_dir=lib, env=env)[1]["compiled"] is True
    # the marker is specific: another device type or another driver still needs compiling
    assert kernels.kernel_status(report, device_type="CUDA", lib_dir=lib, env=env)[1]["compiled"] is False
    report.driver = "590.1"
    assert kernels.kernel_status(report, device_type="OPTIX", lib_dir=lib, env=env)[1]["compiled"] is False


def test_a_gpu_lanes_first_frame_writes_its_cards_marker(lib, tmp_path, monkeypatch):
    monkeypatch.setattr(kernels, "cycles_lib_dir", lambda program: lib)
    cache = str(tmp_path / "cache")
    lane = Lane("gpu0", "OPTIX", gpus=[card(0, (9, 0))])
    thread = kernels.mark_lane_later(lane, [{"type": "OPTIX", "id": "x"}], "580.159.04", "python", cache)
    thread.join(10)
    report = DeviceReport(gpus=[card(0, (9, 0))], driver="580.159.04")
    assert kernels.kernel_status(report, device_type="OPTIX", lib_dir=lib, env={"CUDA_CACHE_PATH": cache})[0][
        "compiled"
    ]


def test_prepare_compiles_once_per_kind_of_card(lib, tmp_path, monkeypatch):
    monkeypatch.setattr(kernels, "cycles_lib_dir", lambda program: lib)
    monkeypatch.setenv("CUDA_CACHE_PATH", str(tmp_path / "cache"))
    report = DeviceReport(gpus=[card(0, (9, 0)), card(1, (9, 0)), card(2, (8, 0), "A100"), card(3, (8, 6))])
    statuses, todo = prepare.plan(report, "python", "OPTIX", None, force=False)
    assert len(statuses) == 4 and [status["index"] for status in todo] == [0, 2]  # one H100, one A100
    _statuses, todo = prepare.plan(report, "python", "OPTIX", ["1", "3"], force=False)
    assert [status["index"] for status in todo] == [1]
    _statuses, todo = prepare.plan(report, "python", "OPTIX", ["3"], force=True)
    assert [status["index"] for status in todo] == [3]


def test_no_backup_copies_while_compiling(tmp_path):
    # a card that compiled fast must not render a second copy of a slower card's frame: killing that
    # worker would throw away its half-done compile
    for backups, expected in ((True, {2: "a"}), (False, {})):
        rig = Rig(tmp_path, lanes=("a", "b"), frames=[1, 2], device_type="OPTIX", backups=backups)
        rig.sup.start()
        rig.ready("a", "b")
        rig.clock.now = 5.0
        rig.finish("a")
        rig.clock.now = 50.0
        rig.sup.tick()
        assert rig.queue.backups == expected


def test_prepare_job_pins_one_frame_per_card_and_turns_backups_off(tiny_blend, tmp_path, monkeypatch):
    from dispatcher.runner import JobRun

    monkeypatch.setattr(prepare, "tiny_scene", lambda program: str(tiny_blend))
    todo = [{"index": 0}, {"index": 2}]
    job_dir = prepare.make_job(todo, "python", "OPTIX", str(tmp_path / "job"))
    job = JobRun(job_dir)
    assert job.spec.gpus == ["0", "2"] and job.spec.frames == "1-2" and job.spec.device_type == "OPTIX"
    assert job.spec.samples == 1 and job.spec.first_frame_timeout == 3600.0
    assert job.config.backups is False


def test_prepare_builds_its_tiny_scene_once(tmp_path, monkeypatch):
    from dispatcher.runner import check_blend

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    blend = prepare.tiny_scene(sys.executable)  # a real bpy build
    check_blend(blend)
    path = tmp_path / "gpu-render-farm" / "prepare" / "prepare.blend"
    built = path.stat().st_mtime
    assert prepare.tiny_scene(sys.executable) == blend == str(path) and path.stat().st_mtime == built


def test_a_worker_reports_its_cycles_kernel_folder_and_start_up_steps(tiny_blend):
    import json
    import subprocess

    from dispatcher.blender_scripts import WORKER

    argv = [sys.executable, WORKER, "--blend", str(tiny_blend), "--lane", "cpu0"]
    done = subprocess.run(argv, input='{"cmd": "quit"}\n', capture_output=True, text=True, timeout=120, check=False)
    ready = json.loads(done.stdout.splitlines()[0])
    assert ready["event"] == "ready"
    assert (8, 6) in kernels.shipped_capabilities(ready["cycles_lib"])  # the runner needs no Python to find it
    steps = [ready["times"][key] for key in ("script", "bpy_imported", "file_opened", "devices_set", "scene_facts")]
    assert steps == sorted(steps)
    assert ready["scene"]["triangles"] > 0 and ready["scene"]["triangles_estimated"] is True
