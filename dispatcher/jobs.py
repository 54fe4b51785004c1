"""Job folders: spec, status, logs, pid; create, launch detached, read, cancel, resume.

Layout of a job folder (private to the user, mode 0700):
  spec.json         the JobSpec
  status.json       replaced atomically while the job runs
  frames.jsonl      one line per frame event (done, retry, failed, skipped)
  scene.json        what the first worker reported about the scene
  dispatcher.pid    pid and start time of the process running the job
  cancel.request    present when a cancel was asked for
  logs/<lane>.log   one log per worker lane; logs/dispatcher.log for a detached run
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

from .lane_state import LaneState
from .spec import IMAGE_FORMATS, JobSpec, SpecError, write_json_atomic
from .status import TERMINAL_STATES, JobStatus, read_status, write_status

__all__ = ["TERMINAL_STATES", "read_status", "write_status"]  # status.json lives in status.py

PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ORIGINAL_PYTHONPATH = "GRF_ORIGINAL_PYTHONPATH"  # restored for workers, which need their own Python's paths


def user_cache_dir() -> str:
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or os.path.expanduser("~\\AppData\\Local")
    elif sys.platform == "darwin":
        base = os.path.expanduser("~/Library/Caches")
    else:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return os.path.join(base, "gpu-render-farm")


def default_jobs_root() -> str:
    return os.environ.get("GRF_JOBS_DIR") or os.path.join(user_cache_dir(), "jobs")


def job_path(job: str) -> str:
    """A job folder as the commands take it: a path, or a job's id under the jobs root (else ``job`` as given)."""
    if os.path.isdir(job):
        return job
    candidate = os.path.join(default_jobs_root(), job)
    return candidate if os.path.isdir(candidate) else job


def make_private_dir(path: str) -> str:
    os.makedirs(path, mode=0o700, exist_ok=True)
    try:
        os.chmod(path, 0o700)
    except OSError:
        pass
    return path


def new_job_id(blend: str) -> str:
    """The one job-folder naming scheme: ``<file stem>-<YYYYmmdd-HHMMSS>-<pid>``."""
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", os.path.splitext(os.path.basename(blend))[0])[:40] or "job"
    return f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid() % 10000:04d}"


def new_job_dir(root: str, blend: str) -> str:
    """A fresh (not yet existing) job folder path under ``root``, named by new_job_id."""
    base = os.path.join(root, new_job_id(blend))
    path, count = base, 1
    while os.path.exists(path):
        count += 1
        path = f"{base}-{count}"
    return path


def create_job(spec: JobSpec, jobs_root: str | None = None, job_dir: str | None = None) -> str:
    """Validate the spec and write a job folder for it; an existing folder must hold the same job."""
    spec.validate()
    spec.blend = os.path.abspath(spec.blend)
    spec.output_dir = os.path.abspath(spec.output_dir)
    if job_dir is None:
        root = make_private_dir(jobs_root or default_jobs_root())
        job_dir = os.path.join(root, spec.job_id) if spec.job_id else new_job_dir(root, spec.blend)
    job_dir = os.path.abspath(job_dir)
    spec_path = os.path.join(job_dir, "spec.json")
    if os.path.exists(spec_path):
        old = load_spec(job_dir)
        if old.identity() != spec.identity():
            raise SpecError(
                f"job folder {job_dir} belongs to another job ({old.blend} -> {old.output_dir}); "
                "choose another --job-dir"
            )
        spec.job_id = old.job_id
        if is_running(job_dir):
            raise SpecError(f"job {old.job_id} is already running (pid {read_pid(job_dir)})")
    elif os.path.isdir(job_dir) and os.listdir(job_dir):
        raise SpecError(f"job folder {job_dir} is not empty and is not a job folder")
    spec.job_id = spec.job_id or os.path.basename(job_dir)
    existed = os.path.isdir(job_dir)
    try:
        make_private_dir(job_dir)
        make_private_dir(os.path.join(job_dir, "logs"))
        spec.save(spec_path)
    except OSError as error:  # a full or read-only disk: one line, and no half-made job folder left
        if not existed:
            for folder in (os.path.join(job_dir, "logs"), job_dir):
                try:
                    os.rmdir(folder)
                except OSError:
                    pass
        raise SpecError(f"cannot write job folder {job_dir}: {error.strerror or error}") from None
    clear_cancel(job_dir)
    _register(job_dir)
    return job_dir


KNOWN_JOBS = ".known-jobs"


def _register(job_dir: str) -> None:
    """Remember a job folder outside the jobs root (--job-dir, the add-on's), for ``jobs`` to list it."""
    root = default_jobs_root()
    if os.path.dirname(job_dir) == os.path.abspath(root):
        return
    make_private_dir(root)
    with open(os.path.join(root, KNOWN_JOBS), "a", encoding="utf-8") as handle:
        handle.write(job_dir + "\n")


def known_job_dirs() -> list[str]:
    """Job folders under the jobs root and those registered from elsewhere that still exist."""
    root = default_jobs_root()
    found = []
    try:
        found = [os.path.join(root, name) for name in os.listdir(root) if not name.startswith(".")]
    except OSError:
        pass
    try:
        with open(os.path.join(root, KNOWN_JOBS), encoding="utf-8") as handle:
            found += [line.strip() for line in handle if line.strip()]
    except OSError:
        pass
    return [path for path in dict.fromkeys(found) if os.path.exists(os.path.join(path, "spec.json"))]


def load_spec(job_dir: str) -> JobSpec:
    """The job's spec; SpecError (one line) for a folder that is not a job or whose spec.json is damaged."""
    from .job_files import load_spec as load_checked

    return load_checked(job_dir)


def write_pid(job_dir: str) -> None:
    record = {"pid": os.getpid(), "started": _start_time(os.getpid())}
    write_json_atomic(os.path.join(job_dir, "dispatcher.pid"), record)


def read_pid(job_dir: str) -> int | None:
    try:
        with open(os.path.join(job_dir, "dispatcher.pid"), encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return None
    pid = data.get("pid") if isinstance(data, dict) else None
    if pid and _start_time(pid) == data.get("started") and data.get("started") is not None:
        return pid
    return None


def _start_time(pid: int) -> float | None:
    try:
        import psutil

        return round(psutil.Process(pid).create_time(), 2)
    except Exception:
        return None


def is_running(job_dir: str) -> bool:
    """A live process runs (or waits to run) this job: its pid record, or its run lock (kill -9 safe)."""
    from .output_lock import job_running

    return read_pid(job_dir) is not None or job_running(job_dir)


def child_env(env: dict | None = None) -> dict:
    """Environment for a detached dispatcher: it must import this package and its dependencies."""
    result = dict(os.environ if env is None else env)
    paths = [PACKAGE_PARENT] + [path for path in sys.path if _importable_path(path) and path != PACKAGE_PARENT]
    result.setdefault(ORIGINAL_PYTHONPATH, result.get("PYTHONPATH", ""))
    result["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    result["PYTHONUNBUFFERED"] = "1"
    return result


def _importable_path(path: str) -> bool:
    """A sys.path entry worth handing on, but never Blender's own bpy scripts (they shadow _bpy)."""
    return bool(path) and os.path.isdir(path) and not os.path.exists(os.path.join(path, "bpy", "__init__.py"))


def launch_detached(job_dir: str, python: str | None = None, env: dict | None = None, extra_args=()) -> int:
    """Run the job in a new session that survives the terminal or Blender closing; returns its pid."""
    log_path = os.path.join(make_private_dir(os.path.join(job_dir, "logs")), "dispatcher.log")
    argv = [python or sys.executable, "-m", "dispatcher", "run-job", job_dir, *extra_args]
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=child_env(env),
            cwd=PACKAGE_PARENT,
            start_new_session=sys.platform != "win32",
            close_fds=True,
        )
    os.chmod(log_path, 0o600)
    return process.pid


def submit(spec: JobSpec, jobs_root: str | None = None, python: str | None = None, env: dict | None = None) -> str:
    """Create the job folder and start the job detached; returns the job folder."""
    job_dir = create_job(spec, jobs_root=jobs_root)
    launch_detached(job_dir, python=python, env=env)
    return job_dir


def clear_cancel(job_dir: str) -> None:
    try:
        os.remove(os.path.join(job_dir, "cancel.request"))
    except FileNotFoundError:
        pass


def prepare_resume(job_dir: str) -> None:
    """Refuse a folder that is not a job or whose job still runs; forget an earlier cancel."""
    from .job_files import read_status as read_checked

    load_spec(job_dir)
    try:
        read_checked(job_dir)
    except SpecError as error:
        raise SpecError(f"{error} (move it away to resume: the frames on disk are what counts)") from None
    if is_running(job_dir):
        raise SpecError(f"job {os.path.basename(job_dir)} is still running")
    clear_cancel(job_dir)


def resume_job(job_dir: str, python: str | None = None, env: dict | None = None) -> int:
    """Start a stopped job again (detached): only missing or invalid frames are rendered."""
    prepare_resume(job_dir)
    return launch_detached(job_dir, python=python, env=env)


def cancel_job(job_dir: str, wait: float = 15.0) -> bool:
    """Ask the job to stop; kill its workers directly if its dispatcher is gone. True when stopped."""
    from .job_files import read_status as read_checked

    load_spec(job_dir)
    if not is_running(job_dir):
        read_checked(job_dir)  # damage is named before anything is written (a running job is still stopped)
    with open(os.path.join(job_dir, "cancel.request"), "w", encoding="utf-8") as handle:
        handle.write(str(time.time()))
    pid = read_pid(job_dir)
    if pid is not None:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pid = None
    deadline = time.monotonic() + wait
    while pid is not None and time.monotonic() < deadline:
        if not is_running(job_dir):
            break
        time.sleep(0.1)
    if is_running(job_dir):
        return False
    _kill_orphan_workers(job_dir)
    status = read_status(job_dir) or JobStatus()
    if not status.is_terminal:
        status.state = status.phase = status.message = "cancelled"
        status.updated_at = time.time()
        for lane in status.lanes:
            lane.state, lane.pid, lane.frame = LaneState.STOPPED.value, None, None
        write_status(job_dir, status)
    return True


def _kill_orphan_workers(job_dir: str) -> None:
    """Workers whose dispatcher died: find them by the job's blend path and our worker script."""
    from .process import WORKER_SCRIPT, kill_group

    status = read_status(job_dir)
    for lane in status.lanes if status else []:
        pid = lane.pid
        if not pid:
            continue
        try:
            import psutil

            if WORKER_SCRIPT not in " ".join(psutil.Process(pid).cmdline()):
                continue
        except Exception:
            continue
        kill_group(pid)


def cached_scene(job_dir: str, blend: str) -> dict | None:
    """What the first worker reported about the scene (scene.json), while the .blend is unchanged."""
    try:
        with open(os.path.join(job_dir, "scene.json"), encoding="utf-8") as handle:
            scene = json.load(handle)
    except (OSError, ValueError):
        return None
    return scene if type(scene) is dict and scene.get("blend_mtime") == os.path.getmtime(blend) else None


def save_scene(job_dir: str, blend: str, scene: dict, file_format: str | None = None) -> None:
    """The first worker's scene facts, kept for a resume; ``file_format``: the one the job renders in (a
    worker started before the format was known reported the scene's own)."""
    if file_format:
        extension = IMAGE_FORMATS.get(file_format, scene.get("file_extension"))
        scene.update(file_format=file_format, file_extension=extension)
    scene["blend_mtime"] = os.path.getmtime(blend)
    write_json_atomic(os.path.join(job_dir, "scene.json"), scene)
