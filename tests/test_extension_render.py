"""`bpy.ops.grf.render_all()` as an artist would call it: checks first, then a detached job that finishes."""

import importlib
import importlib.util
import json
import os
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from farmtest import leftovers, load_extension, wait_for

bpy = pytest.importorskip("bpy")
ROOT = Path(__file__).resolve().parent.parent
NAME = "gpu_render_farm"
TIMEOUT = 120.0




@pytest.fixture
def farm(tmp_path):
    """A fresh tiny scene (Cycles, 32x32, 4 samples, frames 1-4) with the add-on enabled; no GPU."""
    import addon_utils

    load_extension()
    bpy.ops.wm.read_homefile(use_empty=False, use_factory_startup=True)
    addon_utils.enable(NAME, default_set=True, handle_error=None)
    modules = SimpleNamespace(
        monitor=importlib.import_module(f"{NAME}.monitor"),
        jobs=importlib.import_module(f"{NAME}.dispatcher.jobs"),
        devices=importlib.import_module(f"{NAME}.dispatcher.devices"),
        preferences=importlib.import_module(f"{NAME}.preferences"),
        panel=importlib.import_module(f"{NAME}.ui.panel").GRF_PT_render_farm,
        job_view=importlib.import_module(f"{NAME}.ui.job_view"),
    )
    prefs = modules.preferences.get_preferences(bpy.context)
    prefs.jobs_dir = str(tmp_path / "jobs")
    modules.monitor.set_devices(modules.devices.DeviceReport(reason="CI has no GPU"))
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = 4
    scene.render.resolution_x = scene.render.resolution_y = 32
    scene.render.resolution_percentage = 100
    scene.frame_start, scene.frame_end = 1, 4
    scene.render.filepath = str(tmp_path / "out" / "shot_")
    scene.render.image_settings.file_format = "PNG"
    modules.tmp = tmp_path
    modules.scene = scene
    yield modules
    for job_dir in modules.monitor.attached_jobs():
        if modules.jobs.is_running(job_dir):
            modules.jobs.cancel_job(job_dir)
    addon_utils.disable(NAME, default_set=True, handle_error=None)


def draw_panel(farm) -> None:
    """Draw the Output panel into a real (off-screen) layout; what it showed lands in job_view.last_drawn."""
    from test_extension_panel import Layout

    farm.panel.draw(SimpleNamespace(layout=Layout()), bpy.context)


def save(farm) -> str:
    path = str(farm.tmp / "shot.blend")
    bpy.ops.wm.save_as_mainfile(filepath=path)
    return path


def refused(farm, message: str) -> None:
    """The operator stops with `message` and starts nothing."""
    with pytest.raises(RuntimeError, match=message):
        bpy.ops.grf.render_all()
    assert farm.scene.gpu_render_farm.job_dir == ""
    assert not (farm.tmp / "jobs").exists() or not os.listdir(farm.tmp / "jobs")


def test_unsaved_file_is_refused(farm):
    refused(farm, r"Save the \.blend file first")


def test_a_folder_another_job_is_writing_is_refused_naming_that_job(farm):
    save(farm)
    output_lock = importlib.import_module(f"{NAME}.dispatcher.output_lock")
    folder, _pattern = importlib.import_module(f"{NAME}.planning").output_target(farm.scene, bpy.data.filepath)
    os.makedirs(folder, exist_ok=True)
    writer = output_lock.OutputLock(folder, "other-shot-1", str(farm.tmp / "other"))
    writer.acquire()
    try:
        refused(farm, rf"being written by job other-shot-1, pid {os.getpid()}")
    finally:
        writer.release()


def test_scene_without_camera_is_refused(farm):
    save(farm)
    farm.scene.camera = None
    refused(farm, "has no active camera")


def test_empty_frame_range_is_refused(farm):
    save(farm)  # Blender keeps the scene's end >= start; a typed frame list can still be empty or reversed
    farm.scene.gpu_render_farm.use_scene_range = False
    farm.scene.gpu_render_farm.frames = "20-10"
    refused(farm, "Frame range: reversed frame range")
    farm.scene.gpu_render_farm.frames = " "
    refused(farm, "Frame range: empty frame range")


def test_no_gpu_selected_is_refused(farm):
    save(farm)
    report = farm.devices.DeviceReport(
        gpus=[farm.devices.Gpu(0, "NVIDIA H200", "GPU-aaaa", "00000000:18:00.0", 143771, 143000)]
    )
    farm.monitor.set_devices(report)
    prefs = farm.preferences.get_preferences(bpy.context)
    farm.preferences.sync_devices(prefs, report.gpus)
    prefs.devices[0].use = False
    refused(farm, "No GPU selected: tick at least one card")


def test_eevee_cannot_pin_cards(farm):
    save(farm)
    gpus = [farm.devices.Gpu(i, "NVIDIA H200", f"GPU-{i}", f"00000000:1{i}:00.0", 143771, 143000) for i in (0, 1)]
    farm.monitor.set_devices(farm.devices.DeviceReport(gpus=gpus))
    farm.scene.render.engine = "BLENDER_EEVEE"
    plan_job = importlib.import_module(f"{NAME}.planning").plan_job
    plan = plan_job(bpy.context, farm.preferences.get_preferences(bpy.context), farm.monitor.devices)
    assert plan.spec.layout == "combined"  # Automatic: one worker on the cards, no per-card pinning
    farm.scene.gpu_render_farm.mode = "PER_CARD"
    refused(farm, "Per-card GPU pinning only works with Cycles")
    farm.scene.gpu_render_farm.cpu_lane = True
    refused(farm, "The CPU lane needs Cycles")


def test_movie_output_renders_png_frames(farm):
    plan_job = importlib.import_module(f"{NAME}.planning").plan_job
    save(farm)
    farm.scene.render.image_settings.media_type = "VIDEO"
    plan = plan_job(bpy.context, farm.preferences.get_preferences(bpy.context), farm.monitor.devices)
    assert plan.spec.file_format == "PNG"
    assert plan.spec.video is True
    assert plan.spec.extra["audio_blend"] == bpy.data.filepath
    # the scene's "//.../shot_" as Blender reads it: no # in the name, so four digits are appended (shot_0001.png)
    assert (plan.spec.device_type, plan.spec.frames, plan.spec.file_pattern) == ("CPU", "1-4", "shot_")
    assert plan.spec.overwrite == "overwrite" and plan.spec.placeholders is False  # Blender's own defaults


def shadowed_bpy(jobs) -> list[str]:
    """PYTHONPATH entries given to the detached dispatcher that hold Blender's pure-Python `bpy` scripts:
    a worker run with this Python would import them instead of the bpy module and fail (No module `_bpy`)."""
    paths = jobs.child_env().get("PYTHONPATH", "").split(os.pathsep)
    return [path for path in paths if path and os.path.isfile(os.path.join(path, "bpy", "__init__.py"))]


def test_render_all_runs_detached_and_finishes(farm):
    if shadowed_bpy(farm.jobs):
        pytest.xfail("engine: jobs.child_env() passes bpy's script folders on PYTHONPATH to bpy-module workers")
    blend = save(farm)
    farm.scene.render.image_settings.media_type = "VIDEO"  # the artist's movie output is handled
    assert bpy.ops.grf.render_all() == {"FINISHED"}
    assert farm.scene.render.image_settings.media_type == "VIDEO"  # the artist's own setting is kept
    job_dir = farm.scene.gpu_render_farm.job_dir
    assert job_dir.startswith(str(farm.tmp / "jobs"))
    assert os.path.isfile(os.path.join(job_dir, "snapshot.blend"))
    assert bpy.data.filepath == blend  # the artist keeps working in the original file
    assert bpy.app.timers.is_registered(farm.monitor.tick)
    pid = farm.jobs.read_pid(job_dir) or farm.monitor.status(job_dir) and farm.monitor.status(job_dir)["pid"]
    if pid:  # detached: its own session, so closing Blender does not stop it
        assert os.getsid(pid) != os.getsid(0)

    seen_done, seen_lanes, intervals, status = set(), set(), set(), None
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        intervals.add(farm.monitor.tick())  # what the timer does each second
        status = farm.monitor.status(job_dir)
        if status:
            seen_done.add(status["frames"]["done"])
            seen_lanes.update(lane["name"] for lane in status.get("lanes", []))
            if status["state"] in ("done", "failed", "cancelled") and not farm.monitor.is_active(job_dir):
                break
        time.sleep(0.3)
    log = Path(job_dir, "logs", "dispatcher.log")
    assert status and status["state"] == "done", (status, log.read_text() if log.exists() else "no log")
    assert status["frames"]["done"] == 4 and status["frames"]["failed"] == 0
    assert seen_lanes and all(name.startswith("cpu") for name in seen_lanes)
    assert max(seen_done) == 4 and farm.monitor.INTERVAL in intervals
    assert farm.monitor.tick() is None  # done: the timer stops itself
    frames = sorted(p.name for p in (farm.tmp / "out").glob("shot_*.png"))
    assert frames == ["shot_0001.png", "shot_0002.png", "shot_0003.png", "shot_0004.png"]
    assert status["video"] and os.path.getsize(status["video"]) > 0

    # Encode Video from the panel (the MP4 gone, as for a job rendered without one) becomes Play Video
    os.remove(status["video"])
    status.video = None
    farm.jobs.write_status(job_dir, status)
    farm.monitor.poll(job_dir)
    assert bpy.ops.grf.play_video() == {"FINISHED"}
    assert farm.monitor.encoding(job_dir) and farm.monitor.tick() == farm.monitor.INTERVAL
    wait_for(lambda: not farm.monitor.encoding(job_dir), TIMEOUT, what="the encode")
    farm.monitor.tick()
    assert not farm.monitor.encode_errors.get(job_dir)
    assert os.path.isfile(farm.jobs.read_status(job_dir)["video"])
    draw_panel(farm)
    assert farm.job_view.last_drawn["buttons"]["Play Video"] is True

    # reopening the .blend re-attaches to the job and shows it finished
    bpy.ops.wm.open_mainfile(filepath=blend)
    assert bpy.context.scene.gpu_render_farm.job_dir == job_dir
    assert bpy.app.timers.is_registered(farm.monitor.tick)
    assert farm.monitor.status(job_dir)["state"] == "done"


def test_reopening_the_file_reattaches_to_its_job(farm):
    job_dir = farm.tmp / "jobs" / "shot-earlier"
    job_dir.mkdir(parents=True)
    (job_dir / "spec.json").write_text(json.dumps({"blend": "snapshot.blend", "output_dir": str(farm.tmp / "out")}))
    status = {"state": "done", "phase": "done", "frames": {"total": 4, "done": 4}, "lanes": [], "output_dir": "x"}
    (job_dir / "status.json").write_text(json.dumps(status))
    farm.scene.gpu_render_farm.job_dir = str(job_dir)
    blend = save(farm)
    bpy.ops.wm.read_homefile(use_empty=True)
    if bpy.app.timers.is_registered(farm.monitor.tick):
        bpy.app.timers.unregister(farm.monitor.tick)
    bpy.ops.wm.open_mainfile(filepath=blend)
    assert bpy.context.scene.gpu_render_farm.job_dir == str(job_dir)
    assert bpy.app.timers.is_registered(farm.monitor.tick)  # the load_post handler restarted polling
    assert farm.monitor.status(str(job_dir))["frames"]["done"] == 4


def test_per_card_device_type_and_workers_reach_the_job(farm):
    plan_job = importlib.import_module(f"{NAME}.planning").plan_job
    save(farm)
    gpus = [farm.devices.Gpu(i, "NVIDIA H200", f"GPU-{i}", f"00000000:1{i}:00.0", 143771, 143000) for i in (0, 1)]
    report = farm.devices.DeviceReport(gpus=gpus)
    farm.monitor.set_devices(report)
    prefs = farm.preferences.get_preferences(bpy.context)
    farm.preferences.sync_devices(prefs, gpus)
    prefs.devices[1].device_type, prefs.devices[1].workers = "CUDA", 2
    farm.scene.gpu_render_farm.mode = "PER_CARD"
    plan = plan_job(bpy.context, prefs, report)
    assert plan.spec.per_gpu == {"GPU-1": {"device_type": "CUDA", "workers": 2}}
    lanes = importlib.import_module(f"{NAME}.dispatcher.lanes").plan_lanes(plan.spec, report, "OPTIX")
    expected = [("gpu0", "OPTIX"), ("gpu1.0", "CUDA"), ("gpu1.1", "CUDA")]
    assert [(lane.name, lane.device_type) for lane in lanes] == expected


def test_cancel_then_resume_from_the_panel_buttons(farm):
    from farmtest import worker_processes

    farm.scene.cycles.samples = 128
    farm.scene.render.resolution_x = farm.scene.render.resolution_y = 96
    farm.scene.frame_end = 10
    save(farm)
    assert bpy.ops.grf.render_all() == {"FINISHED"}
    job_dir = farm.scene.gpu_render_farm.job_dir
    snapshot = os.path.join(job_dir, "snapshot.blend")
    out = farm.tmp / "out"
    wait_for(lambda: list(out.glob("shot_*.png")), TIMEOUT, what="a first frame")
    assert worker_processes(snapshot)
    started = time.monotonic()
    assert bpy.ops.grf.cancel_job() == {"FINISHED"}
    assert time.monotonic() - started < 0.5  # the interface does not wait for the workers
    draw_panel(farm)
    assert farm.job_view.last_drawn["kind"] == "cancelling" and farm.job_view.last_drawn["busy"]
    wait_for(lambda: farm.monitor.tick() is None, 30, what="the timer to see the job stopped")
    assert not worker_processes(snapshot) and not farm.jobs.is_running(job_dir)
    assert farm.jobs.read_status(job_dir)["state"] == "cancelled"
    assert not leftovers(out), "no partial frame is left"
    kept = {path.name: path.stat().st_mtime_ns for path in out.glob("shot_*.png")}
    assert 1 <= len(kept) < 10

    farm.monitor.tick()  # what the panel's timer does every second
    assert bpy.ops.grf.resume_job() == {"FINISHED"}
    # the status on disk still says cancelled, but the panel follows the new dispatcher from the start
    assert farm.monitor.tick() == farm.monitor.INTERVAL and farm.monitor.is_active(job_dir)
    draw_panel(farm)
    assert farm.job_view.last_drawn["busy"] and farm.job_view.last_drawn["buttons"]["Cancel"] is True
    with pytest.raises(RuntimeError, match="still running"):  # no second render into the same folder
        bpy.ops.grf.render_all()
    status = wait_for(lambda: (s := farm.jobs.read_status(job_dir)) and s["state"] == "done" and s, TIMEOUT,
                      what="the resumed job to finish")  # fmt: skip
    assert status["frames"]["done"] == 10 and status["frames"]["skipped"] == len(kept)
    assert {name: (out / name).stat().st_mtime_ns for name in kept} == kept, "finished frames were not redone"
    assert sorted(path.name for path in out.glob("shot_*.png")) == [f"shot_{frame:04d}.png" for frame in range(1, 11)]


def test_render_image_renders_the_current_frame_in_automatic_mode(farm):
    save(farm)
    farm.scene.frame_set(3)
    assert bpy.ops.grf.render_all(still=True) == {"FINISHED"}
    job_dir = farm.scene.gpu_render_farm.job_dir
    spec = json.loads(Path(job_dir, "spec.json").read_text())
    assert (spec["frames"], spec["layout"]) == ("3", "auto")
    status = wait_for(lambda: (s := farm.jobs.read_status(job_dir)) and s["state"] == "done" and s, TIMEOUT,
                      what="the still to finish")  # fmt: skip
    wait_for(lambda: farm.monitor.tick() is None, 30, what="the dispatcher to exit")
    assert status["autotune"]["reason"] and status["frames"]["done"] == 1
    assert sorted(p.name for p in (farm.tmp / "out").glob("shot_*.png")) == ["shot_0003.png"]
    draw_panel(farm)
    drawn = farm.job_view.last_drawn
    assert drawn["bar"].startswith("Done — 1 frame in ") and drawn["lines"][0].startswith("Automatic — ")

    # the artist edits and saves: Resume would render the old snapshot, so the panel says so
    time.sleep(1.1)
    bpy.ops.wm.save_mainfile()
    draw_panel(farm)
    shown = " ".join(farm.job_view.last_drawn["lines"])
    assert "Your file changed since that snapshot: Render again to use it" in shown


def test_notify_url_preference_reaches_the_job(farm):
    plan_job = importlib.import_module(f"{NAME}.planning").plan_job
    save(farm)
    prefs = farm.preferences.get_preferences(bpy.context)
    prefs.notify_url = "http://127.0.0.1:9/render-hook"
    assert plan_job(bpy.context, prefs, farm.monitor.devices).spec.notify_url == "http://127.0.0.1:9/render-hook"
    prefs.notify_url = "mailto:render@example.org"
    refused(farm, "notify URL must be http:// or https://")
    prefs.notify_url = ""


def wait_until_finished(farm, job_dir: str) -> dict:
    deadline, status = time.monotonic() + TIMEOUT, None
    while time.monotonic() < deadline:
        farm.monitor.tick()
        status = farm.monitor.status(job_dir)
        if status and status["state"] in ("done", "failed", "cancelled") and not farm.monitor.is_active(job_dir):
            return status
        time.sleep(0.3)
    raise AssertionError(f"job did not finish: {status}")


def test_missing_texture_stops_the_job_and_render_anyway_renders_it(farm):
    if shadowed_bpy(farm.jobs):
        pytest.xfail("engine: jobs.child_env() passes bpy's script folders on PYTHONPATH to bpy-module workers")
    image = bpy.data.images.new("wood", 4, 4)
    image.source, image.filepath = "FILE", str(farm.tmp / "textures" / "wood.png")  # not there
    image.use_fake_user = True
    farm.scene.frame_end = 2
    save(farm)
    assert bpy.ops.grf.render_all() == {"FINISHED"}
    status = wait_until_finished(farm, farm.scene.gpu_render_farm.job_dir)
    assert status["state"] == "failed" and status["frames"]["done"] == 0
    assert status["missing_files"] == [str(farm.tmp / "textures" / "wood.png")]  # what the panel's box lists
    assert not list((farm.tmp / "out").glob("shot_*.png"))
    assert bpy.ops.grf.render_all(allow_missing=True) == {"FINISHED"}  # the box's "Render Anyway" button
    status = wait_until_finished(farm, farm.scene.gpu_render_farm.job_dir)
    assert status["state"] == "done" and status["frames"]["done"] == 2 and not status.get("missing_files")
