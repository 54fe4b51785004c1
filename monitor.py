"""Live state for the panel: detected devices and job status, polled by a `bpy.app.timers` callback.

The timer re-reads a job's ``status.json`` only when the file (or the output folder) changed, and
redraws the Properties editor only when the status did. A ``load_post`` handler restarts the timer
when a saved .blend is attached to a job, so reopening the file re-attaches to it.
"""

from __future__ import annotations

import os
import threading
import time

import bpy
from bpy.app.handlers import persistent

from .dispatcher.status import ACTIVE_STATES, JobStatus

INTERVAL = 1.0
LAUNCH_GRACE = 30.0  # seconds a launched job may take to write its pid

devices = None  # DeviceReport from the last explicit refresh
cycles_devices: list[tuple[str, str]] = []  # (name, type) when NVML has no GPU
kernels: list[dict] = []  # per card: compiled Cycles kernels or not (dispatcher/kernels.py), at refresh
_status: dict[str, tuple[tuple, JobStatus | None]] = {}  # job dir -> (file signature, status)
_encodes: dict[str, threading.Thread] = {}
encode_errors: dict[str, str] = {}  # job dir -> why the last encode failed
redraws = 0  # how many times a change triggered a redraw (tests read it)


def set_devices(report, cycles: list[tuple[str, str]] | None = None) -> None:
    """Store a device report (and Cycles' own device list) for the panel."""
    global devices, cycles_devices
    devices = report
    cycles_devices = list(cycles or [])


def _signature(job_dir: str) -> tuple:
    found = []
    for path in (os.path.join(job_dir, "status.json"), _output_dir(job_dir)):
        try:
            info = os.stat(path) if path else None
            found.append((info.st_mtime_ns, info.st_size) if info else None)
        except OSError:
            found.append(None)
    return tuple(found)


def _output_dir(job_dir: str) -> str | None:
    cached = _status.get(job_dir)
    return cached[1].output_dir if cached and cached[1] else None


def status(job_dir: str) -> JobStatus | None:
    """The job's last known status (read once if never read); None when there is none yet."""
    if not job_dir:
        return None
    if job_dir not in _status:
        poll(job_dir)
    return _status[job_dir][1]


def poll(job_dir: str) -> bool:
    """Re-read the status when its file changed; True when the status itself changed."""
    signature = _signature(job_dir)
    old = _status.get(job_dir)
    if old is not None and old[0] == signature:
        return False
    from .dispatcher import jobs

    new = jobs.read_status(job_dir)
    _status[job_dir] = (signature, new)
    return old is None or old[1] != new


def is_active(job_dir: str) -> bool:
    """Whether the job may still change: its dispatcher runs, or it was launched moments ago."""
    from .dispatcher import jobs

    if encoding(job_dir):
        return True
    current = status(job_dir)
    if current is not None and current.state not in ACTIVE_STATES:
        return False
    if jobs.is_running(job_dir):
        return True
    try:  # launched but no pid or status written yet
        return time.time() - os.path.getmtime(os.path.join(job_dir, "spec.json")) < LAUNCH_GRACE
    except OSError:
        return False


def stalled(job_dir: str) -> bool:
    """The status says running but no dispatcher is alive (killed, machine rebooted)."""
    current = status(job_dir)
    return current is not None and current.state in ACTIVE_STATES and not is_active(job_dir)


def attached_jobs() -> list[str]:
    """Job folders attached to the scenes of the open file."""
    return sorted({scene.gpu_render_farm.job_dir for scene in bpy.data.scenes} - {""})


def tick() -> float | None:
    """Timer callback: poll every attached job, redraw on change; stop when no job is active."""
    global redraws
    changed = False
    for job_dir in attached_jobs():
        changed |= poll(job_dir)
    if changed:
        redraws += 1
        _tag_redraw()
    return INTERVAL if any(is_active(job_dir) for job_dir in attached_jobs()) else None


def _tag_redraw() -> None:
    window_manager = bpy.context.window_manager
    for window in window_manager.windows if window_manager else ():
        for area in window.screen.areas:
            if area.type == "PROPERTIES":
                area.tag_redraw()


def ensure_timer() -> None:
    """Start polling (idempotent)."""
    if not bpy.app.timers.is_registered(tick):
        bpy.app.timers.register(tick, first_interval=0.2, persistent=True)


def start_encode(job_dir: str) -> None:
    """Encode the job's frames to MP4 in a thread; the timer redraws when it is done."""
    from .dispatcher.video import encode_job

    def run():
        try:
            encode_job(job_dir)
        except Exception as error:  # shown in the panel; a thread has no one else to tell
            encode_errors[job_dir] = str(error) or type(error).__name__
        finally:
            _status.pop(job_dir, None)

    encode_errors.pop(job_dir, None)
    thread = threading.Thread(target=run, name="grf-encode", daemon=True)
    _encodes[job_dir] = thread
    thread.start()
    ensure_timer()


def encoding(job_dir: str) -> bool:
    return job_dir in _encodes and _encodes[job_dir].is_alive()


@persistent
def _on_load_post(*_args) -> None:
    _status.clear()
    if attached_jobs():
        ensure_timer()


def register():
    if _on_load_post not in bpy.app.handlers.load_post:
        bpy.app.handlers.load_post.append(_on_load_post)


def unregister():
    if _on_load_post in bpy.app.handlers.load_post:
        bpy.app.handlers.load_post.remove(_on_load_post)
    if bpy.app.timers.is_registered(tick):
        bpy.app.timers.unregister(tick)
    _status.clear()
