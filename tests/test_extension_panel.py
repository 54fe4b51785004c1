"""The panel draws what the artist needs in each state, checked through a recording layout."""

import importlib
import importlib.util
import json
import os
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from farmtest import load_extension

bpy = pytest.importorskip("bpy")
ROOT = Path(__file__).resolve().parent.parent
NAME = "gpu_render_farm"




class Layout:
    """Stands in for `UILayout`: records labels, props, operators and progress bars in drawing order."""

    def __init__(self, log=None, parent=None):
        self.log = [] if log is None else log
        self.parent = parent
        self.enabled = self.active = True
        self.alert = False

    def _child(self, *_args, **_kwargs):
        return Layout(self.log, self)

    row = column = box = split = grid_flow = column_flow = _child

    def is_enabled(self):
        return self.enabled and (self.parent is None or self.parent.is_enabled())

    def is_alert(self):
        return self.alert or (self.parent is not None and self.parent.is_alert())

    def label(self, text="", icon="NONE", **_kwargs):
        self.log.append(("label", text, self.is_alert()))

    def prop(self, data, name, text=None, **_kwargs):
        assert hasattr(data, name), f"{data!r} has no property {name!r}"
        self.log.append(("prop", name, text))

    def operator(self, idname, text=None, **_kwargs):
        category, _, name = idname.partition(".")
        assert hasattr(getattr(bpy.ops, category), name), f"no operator {idname}"
        self.log.append(("operator", idname, text, self.is_enabled()))
        return SimpleNamespace()

    def progress(self, factor=0.0, type="BAR", text=""):
        self.log.append(("progress", text, round(factor, 3)))

    def separator(self, **_kwargs):
        pass

    # what tests read
    def labels(self):
        return [entry[1] for entry in self.log if entry[0] == "label"]

    def alerts(self):
        return [entry[1] for entry in self.log if entry[0] == "label" and entry[2]]

    def operators(self):
        return {entry[1]: entry[3] for entry in self.log if entry[0] == "operator"}

    def bars(self):
        return {entry[1]: entry[2] for entry in self.log if entry[0] == "progress"}

    def props(self):
        return [(entry[1], entry[2]) for entry in self.log if entry[0] == "prop"]


@pytest.fixture(scope="module")
def extension():
    import addon_utils

    load_extension()
    addon_utils.enable(NAME, default_set=True, handle_error=None)
    yield SimpleNamespace(
        monitor=importlib.import_module(f"{NAME}.monitor"),
        devices=importlib.import_module(f"{NAME}.dispatcher.devices"),
        panel=importlib.import_module(f"{NAME}.ui.panel").GRF_PT_render_farm,
        preferences=importlib.import_module(f"{NAME}.preferences"),
    )
    addon_utils.disable(NAME, default_set=True, handle_error=None)


@pytest.fixture
def scene(extension):
    scene = bpy.context.scene
    scene.gpu_render_farm.job_dir = ""
    extension.monitor.set_devices(None)
    yield scene
    scene.gpu_render_farm.job_dir = ""


def draw(extension) -> Layout:
    layout = Layout()
    extension.panel.draw(SimpleNamespace(layout=layout), bpy.context)
    return layout


def two_gpus(devices):
    return devices.DeviceReport(
        gpus=[
            devices.Gpu(0, "NVIDIA H200", "GPU-aaaa", "00000000:18:00.0", 143771, 133531, 57, 64, (9, 0)),
            devices.Gpu(1, "NVIDIA H200", "GPU-bbbb", "00000000:2A:00.0", 143771, 143771, None, None, (9, 0)),
        ],
        driver="570.1",
    )


def write_job(job_dir: Path, status: dict, alive: bool) -> str:
    job_dir.mkdir(parents=True, exist_ok=True)
    (job_dir / "spec.json").write_text(json.dumps({"blend": "x.blend", "output_dir": str(job_dir / "out")}))
    (job_dir / "status.json").write_text(json.dumps(status))
    if alive:  # this test process plays the dispatcher
        import psutil

        started = round(psutil.Process(os.getpid()).create_time(), 2)
        (job_dir / "dispatcher.pid").write_text(json.dumps({"pid": os.getpid(), "started": started}))
    return str(job_dir)


def status(state="running", phase="rendering", lanes=(), failed=None, done=3, total=8, video=None):
    failed = failed or {}
    return {
        "job_id": "shot", "state": state, "phase": phase, "pid": os.getpid(), "elapsed": 42.0,
        "eta_seconds": 75.0 if state == "running" else None, "output_dir": "/tmp/out", "video": video,
        "message": None, "failed_frames": failed, "lanes": list(lanes),
        "frames": {"total": total, "done": done, "failed": len(failed), "skipped": 0,
                   "remaining": total - done - len(failed), "in_flight": 1},
    }


def lane(name, state="rendering", frame=None, sample=None, samples=None, phase=None, **extra):
    return {"name": name, "state": state, "device": "NVIDIA H200", "frame": frame, "sample": sample,
            "samples": samples, "frames_done": 1, "failures": 0, "blocklisted": False, "last_error": None,
            "phase": phase, **extra}


def test_before_refresh_and_without_gpu(extension, scene):
    layout = draw(extension)
    assert "Press Refresh to look for GPUs" in layout.labels()
    assert layout.operators() == {"grf.refresh_devices": True, "grf.render_all": True}
    assert ("mode", None) in layout.props() and ("output_dir", None) in layout.props()

    extension.monitor.set_devices(extension.devices.DeviceReport(reason="NVML unavailable: driver not loaded"))
    layout = draw(extension)
    assert "No GPU found by NVML: NVML unavailable: driver not loaded" in layout.labels()
    assert "Frames will render on CPU lanes" in layout.labels()
    assert f"Frames {scene.frame_start} - {scene.frame_end}" in layout.labels()
    assert not layout.bars()


def test_cycles_devices_listed_when_nvml_has_none(extension, scene):
    extension.monitor.set_devices(extension.devices.DeviceReport(reason="no NVML"), [("Radeon Pro W7900", "HIP")])
    layout = draw(extension)
    assert "Radeon Pro W7900 (HIP)" in layout.labels()
    assert "Frames will render on CPU lanes" not in layout.labels()


def test_gpus_one_row_each_with_checkbox(extension, scene):
    report = two_gpus(extension.devices)
    extension.monitor.set_devices(report)
    extension.preferences.sync_devices(extension.preferences.get_preferences(bpy.context), report.gpus)
    layout = draw(extension)
    assert ("use", "0: NVIDIA H200") in layout.props() and ("use", "1: NVIDIA H200") in layout.props()
    labels = layout.labels()
    assert "10.0 / 140.4 GB" in labels and "57%" in labels and "64 C" in labels
    assert "0.0 / 140.4 GB" in labels  # card 1: no load or temperature from NVML, shown as "-"
    assert layout.operators()["grf.render_all"] is True

    scene.gpu_render_farm.mode = "GROUPS"
    assert ("gpus_per_worker", None) in draw(extension).props()
    scene.gpu_render_farm.mode = "PER_CARD"


def test_running_job(extension, scene, tmp_path):
    lanes = [lane("gpu0", frame=12, sample=2, samples=4), lane("gpu1", state="starting", phase="compiling GPU kernels")]
    scene.gpu_render_farm.job_dir = write_job(tmp_path / "job", status(lanes=lanes), alive=True)
    layout = draw(extension)
    assert layout.bars() == {"3 / 8 frames": 0.375, "frame 12  2/4 samples": 0.5, "compiling GPU kernels": 0.0}
    assert "Elapsed 0:42   ETA 1:15" in layout.labels()
    assert "Running: rendering" in layout.labels()
    ops = layout.operators()
    assert ops["grf.cancel_job"] is True
    assert ops["grf.render_all"] is False  # one render per scene at a time
    assert "grf.resume_job" not in ops and "grf.play_video" not in ops


def test_compiling_phase_is_explained(extension, scene, tmp_path):
    job = status(state="starting", phase="compiling GPU kernels", done=0)
    scene.gpu_render_farm.job_dir = write_job(tmp_path / "job", job, alive=True)
    labels = draw(extension).labels()
    assert "Compiling GPU kernels: the first render on a card can take minutes" in labels


def test_finished_job(extension, scene, tmp_path):
    done = status(state="done", phase="done", done=8, lanes=[lane("gpu0", state="stopped")])
    scene.gpu_render_farm.job_dir = write_job(tmp_path / "job", done, alive=False)
    layout = draw(extension)
    assert layout.bars()["8 / 8 frames"] == 1.0
    ops = layout.operators()
    assert ops["grf.render_all"] is True and ops["grf.open_output"] is True
    assert ("grf.play_video", "Encode Video") in [(e[1], e[2]) for e in layout.log if e[0] == "operator"]
    assert "grf.cancel_job" not in ops and "grf.resume_job" not in ops

    done["video"] = str(tmp_path / "shot.mp4")
    (tmp_path / "job" / "status.json").write_text(json.dumps(done))
    os.utime(tmp_path / "job" / "status.json", ns=(time.time_ns(), time.time_ns() + 10**9))
    extension.monitor.poll(scene.gpu_render_farm.job_dir)
    assert ("grf.play_video", "Play Video") in [(e[1], e[2]) for e in draw(extension).log if e[0] == "operator"]


def test_failed_lane_and_frames(extension, scene, tmp_path):
    bad = lane("gpu1", state="failed", blocklisted=True, failures=3, last_error="CUDA error: out of memory")
    job = status(state="failed", phase="done", done=6, failed={"7": "CUDA error: out of memory"},
                 lanes=[lane("gpu0", state="stopped"), bad])
    scene.gpu_render_farm.job_dir = write_job(tmp_path / "job", job, alive=False)
    layout = draw(extension)
    assert "1 failed frame(s): 7" in layout.alerts()
    assert "gpu1: CUDA error: out of memory" in layout.alerts()
    assert layout.bars()["blocklisted after 3 failures"] == 0.0
    assert layout.operators()["grf.resume_job"] is True


def test_stalled_job_offers_resume(extension, scene, tmp_path):
    job_dir = write_job(tmp_path / "job", status(), alive=False)
    old = time.time() - 3600
    os.utime(Path(job_dir) / "spec.json", (old, old))  # launched long ago, dispatcher gone
    scene.gpu_render_farm.job_dir = job_dir
    layout = draw(extension)
    assert "The render stopped unexpectedly: press Resume to finish it" in layout.labels()
    assert "grf.resume_job" in layout.operators() and "grf.cancel_job" not in layout.operators()


def test_timer_redraws_only_on_change(extension, scene, tmp_path):
    monitor = extension.monitor
    job_dir = write_job(tmp_path / "job", status(done=1), alive=True)
    scene.gpu_render_farm.job_dir = job_dir
    assert monitor.tick() == monitor.INTERVAL  # running: keep polling
    before = monitor.redraws
    assert monitor.tick() == monitor.INTERVAL
    assert monitor.redraws == before  # nothing changed on disk
    path = Path(job_dir) / "status.json"
    path.write_text(json.dumps(status(done=2)))
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    monitor.tick()
    assert monitor.redraws == before + 1
    assert monitor.status(job_dir)["frames"]["done"] == 2
    path.write_text(json.dumps(status(state="done", phase="done", done=8)))
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 2 * 10**9))
    (Path(job_dir) / "dispatcher.pid").unlink()
    assert monitor.tick() is None  # finished: the timer stops
    assert monitor.redraws == before + 2


def test_blenders_own_overwrite_and_placeholders_replace_the_farms_checkbox(extension, scene):
    layout = draw(extension)
    assert ("use_overwrite", None) in layout.props() and ("use_placeholder", None) in layout.props()
    assert ("overwrite", None) not in layout.props() and not hasattr(scene.gpu_render_farm, "overwrite")
    assert "Render again renders every frame; Resume finishes only this job's missing frames" in layout.labels()
    scene.render.use_overwrite = False
    try:
        assert any(text.startswith("Valid frames already in the folder are kept") for text in draw(extension).labels())
    finally:
        scene.render.use_overwrite = True


def test_queued_job_says_behind_which_job(extension, scene, tmp_path):
    job = status(state="queued", phase="Queued behind shot-2 (2 of 2 GPUs busy)", done=0)
    scene.gpu_render_farm.job_dir = write_job(tmp_path / "job", job, alive=True)
    layout = draw(extension)
    assert "Queued behind shot-2 (2 of 2 GPUs busy)" in layout.labels()
    assert layout.operators()["grf.cancel_job"] is True  # a queued job can be cancelled
