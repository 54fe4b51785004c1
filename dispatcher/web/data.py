"""What the dashboard shows, read from the same job folders the CLI uses (no web framework here).

Job folders are read through dispatcher.jobs (spec, status, pid) and dispatcher.report (frames.jsonl);
this module only shapes them into small JSON documents for the page.
"""

from __future__ import annotations

import os
import re

from .. import job_list, jobs
from ..report import read_records
from ..spec import SpecError
from ..status import JobStatus, LaneStatus

JOB_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,200}$")
PAGE_SIZE = 20
MAX_PAGE = 100
FRAME_LIST_CAP = 48
CACHED_JOBS = 64
_records_cache: dict[str, tuple[tuple, list[dict]]] = {}


def job_folders(root: str) -> dict[str, str]:
    """{job id: folder}: the folders under root, and (serving the CLI's own root) the job folders the
    engine registered from elsewhere (``jobs.known_job_dirs``). Ids are folder names; links are skipped."""
    if os.path.realpath(root) == os.path.realpath(jobs.default_jobs_root()):
        paths = jobs.known_job_dirs()
    else:
        try:
            paths = [os.path.join(root, name) for name in os.listdir(root)]
        except OSError:
            paths = []
    found: dict[str, str] = {}
    for path in paths:
        name = os.path.basename(os.path.normpath(path))
        if JOB_NAME.match(name) and name not in found and not os.path.islink(path):
            if os.path.isfile(os.path.join(path, "spec.json")):
                found[name] = path
    return found


def job_path(root: str, job_id: str) -> str | None:
    """The folder of job ``job_id`` (one of job_folders), or None; names with / or .. never match."""
    if not JOB_NAME.match(job_id) or ".." in job_id:
        return None
    path = os.path.join(root, job_id)
    if not os.path.islink(path) and os.path.isfile(os.path.join(path, "spec.json")):
        return path
    return job_folders(root).get(job_id)


def _mtime(job_dir: str) -> float:
    for name in ("status.json", "spec.json"):
        try:
            return os.stat(os.path.join(job_dir, name)).st_mtime
        except OSError:
            continue
    return 0.0


def effective_state(job_dir: str) -> str:
    """The state ``python -m dispatcher jobs`` shows: running, queued, done, failed, cancelled, or stopped."""
    row = job_list.job_row(job_dir)
    return row["state"] if row else "stopped"


def frame_records(job_dir: str) -> list[dict]:
    """frames.jsonl through report.read_records, re-read only when the file changed."""
    path = os.path.join(job_dir, "frames.jsonl")
    try:
        info = os.stat(path)
    except OSError:
        return []
    key = (info.st_mtime_ns, info.st_size)
    cached = _records_cache.get(path)
    if cached and cached[0] == key:
        return cached[1]
    records = read_records(path)
    _records_cache.pop(path, None)
    _records_cache[path] = (key, records)
    while len(_records_cache) > CACHED_JOBS:  # paging through many jobs keeps only the latest few
        _records_cache.pop(next(iter(_records_cache)))
    return records


def relative_output(output_dir: str, path: str | None) -> str | None:
    """A frame's path relative to the job's output folder, or None when it lies elsewhere."""
    if not path:
        return None
    relative = os.path.relpath(os.path.abspath(path), os.path.abspath(output_dir))
    return None if relative.startswith(os.pardir) or os.path.isabs(relative) else relative.replace(os.sep, "/")


def latest_frames(job_dir: str, output_dir: str) -> dict[str, dict]:
    """Per lane, the last frame it finished: {lane: {frame, file}}."""
    latest: dict[str, dict] = {}
    for record in frame_records(job_dir):
        if record.get("status") == "done" and record.get("lane"):
            relative = relative_output(output_dir, record.get("path"))
            if relative:
                latest[record["lane"]] = {"frame": record.get("frame"), "file": relative}
    return latest


def finished_frames(job_dir: str, output_dir: str, limit: int = FRAME_LIST_CAP) -> list[dict]:
    """The last ``limit`` finished frames, newest last: [{frame, file, lane}]."""
    done = {}
    for record in frame_records(job_dir):
        if record.get("status") in ("done", "skipped"):
            relative = relative_output(output_dir, record.get("path"))
            if relative:
                done[record.get("frame")] = {"frame": record.get("frame"), "file": relative, "lane": record.get("lane")}
    return list(done.values())[-limit:]


def _lane(lane: LaneStatus, latest: dict) -> dict:
    keys = ("name", "state", "device", "device_type", "frame", "sample", "samples", "frames_done",
            "seconds_per_frame", "failures", "restarts", "blocklisted", "last_error", "phase", "note")  # fmt: skip
    data = {key: getattr(lane, key) for key in keys}
    data["latest"] = latest.get(lane.name)
    return data


def job_summary(root: str, job_id: str, detail: bool = False) -> dict | None:
    """One job as the page shows it; None when the folder is gone or not a job."""
    job_dir = job_path(root, job_id)
    if job_dir is None:
        return None
    try:
        spec = jobs.load_spec(job_dir)
    except (SpecError, OSError, ValueError, TypeError):
        return None
    state = effective_state(job_dir)
    status = jobs.read_status(job_dir) or JobStatus()
    latest = latest_frames(job_dir, spec.output_dir)
    return {
        "id": job_id,
        "state": state,
        "phase": status.phase if state != "stopped" else "stopped (resume continues it)",
        "blend": os.path.basename(spec.blend),
        "output_dir": spec.output_dir,
        "frames": status.frames,
        "eta_seconds": status.eta_seconds if state == "running" else None,
        "elapsed": status.elapsed,
        "started_at": status.started_at,
        "updated_at": status.updated_at,
        "device_type": status.device_type,
        "message": status.message or status.error or "",
        "failed_frames": dict(list(status.failed_frames.items())[:10]),
        "lanes": [_lane(lane, latest) for lane in status.lanes],
        "video": relative_output(spec.output_dir, status.video) if status.video else None,
        "can_cancel": state in ("running", "queued"),
        "can_resume": state in ("stopped", "failed", "cancelled"),
        "has_timeline": bool(frame_records(job_dir)),
        "recent_frames": finished_frames(job_dir, spec.output_dir, FRAME_LIST_CAP if detail else 12),
    }


def list_jobs(root: str, offset: int = 0, limit: int = PAGE_SIZE) -> dict:
    """A page of jobs: running and queued first, then the most recently updated."""
    limit = max(1, min(limit, MAX_PAGE))
    folders = job_folders(root)
    ids = sorted(folders, key=lambda job_id: _mtime(folders[job_id]), reverse=True)
    live = [job_id for job_id in ids if jobs.is_running(folders[job_id])]
    live_set = set(live)
    ordered = live + [job_id for job_id in ids if job_id not in live_set]
    page = [summary for job_id in ordered[offset : offset + limit] if (summary := job_summary(root, job_id))]
    return {"jobs": page, "total": len(ids), "offset": offset, "limit": limit, "running": len(live)}
