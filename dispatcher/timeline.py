"""A job's per-phase timeline: when each fixed cost began and ended, per job and per lane.

The runner writes ``JOB_DIR/timeline.json`` ({"job": {event: epoch}, "lanes": {lane: {event: epoch}}});
workers report their own start-up steps (``times`` in their ready event), the supervisor stamps what it
sees (spawned, ready, first frame sent, first sample, frames done, quit, exit). ``report`` and the
benchmark print it as seconds from the command. Never imports bpy.
"""

from __future__ import annotations

import json
import os

from .spec import write_json_atomic

FILE = "timeline.json"

JOB_EVENTS = (
    ("command", "command started"),
    ("frames_planned", "frames planned (before the workers when the scene's facts are cached)"),
    ("dispatcher_ready", "dispatcher ready (lanes planned, GPUs leased)"),
    ("first_frame_sent", "first frame sent"),
    ("last_frame_done", "last frame done"),
    ("workers_stopped", "workers stopped"),
    ("exit", "dispatcher exit"),
)
LANE_EVENTS = (
    ("spawned", "worker spawned"),
    ("script", "worker script running"),
    ("bpy_imported", "bpy imported"),
    ("file_opened", "file opened"),
    ("devices_set", "devices set"),
    ("scene_facts", "scene facts counted"),
    ("ready", "ready (dispatcher saw it)"),
    ("first_frame_sent", "first frame sent"),
    ("first_sample", "first sample"),
    ("first_frame_done", "first frame done"),
    ("last_frame_done", "last frame done"),
    ("quit_sent", "quit sent (idle)"),
    ("exit", "worker exit"),
)


def process_start_time() -> float | None:
    """When this process started (epoch seconds): the moment the user's command began."""
    try:
        import psutil

        return float(psutil.Process(os.getpid()).create_time())
    except Exception:
        return None


def write(job_dir: str, job: dict, lanes: dict[str, dict]) -> dict:
    data = {"job": dict(job), "lanes": {name: dict(events) for name, events in lanes.items()}}
    for events in data["lanes"].values():
        if "last_frame_done" in events:
            data["job"]["last_frame_done"] = max(data["job"].get("last_frame_done", 0.0), events["last_frame_done"])
        if "first_frame_sent" in events:
            first = data["job"].get("first_frame_sent")
            data["job"]["first_frame_sent"] = min(first, events["first_frame_sent"]) if first else events[
                "first_frame_sent"
            ]
    write_json_atomic(os.path.join(job_dir, FILE), data)
    return data


def load(job_dir: str) -> dict | None:
    try:
        with open(os.path.join(job_dir, FILE), encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("lanes"), dict) else None


def origin(data: dict) -> float | None:
    job = data.get("job") or {}
    if job.get("command"):
        return float(job["command"])
    stamps = [value for events in data["lanes"].values() for value in events.values() if value]
    return min(stamps) if stamps else None


def relative(data: dict, t0: float | None = None) -> dict:
    """The same timeline as seconds from the command (or ``t0``)."""
    t0 = origin(data) if t0 is None else t0
    if t0 is None:
        return {"job": {}, "lanes": {}}

    def shift(events: dict) -> dict:
        return {key: round(value - t0, 3) for key, value in events.items() if isinstance(value, (int, float))}

    return {"job": shift(data.get("job") or {}), "lanes": {name: shift(ev) for name, ev in data["lanes"].items()}}


def first_frame_sent(data: dict) -> float | None:
    """Seconds from the command to the first frame handed to any worker."""
    shifted = relative(data)["job"]
    return shifted.get("first_frame_sent")


def lane_spread(data: dict) -> float | None:
    """Seconds between the first and the last lane's last frame (how evenly the lanes finished)."""
    ends = [events["last_frame_done"] for events in data["lanes"].values() if "last_frame_done" in events]
    return max(ends) - min(ends) if len(ends) >= 2 else None


def format_table(data: dict) -> str:
    """A text table: one row per event, one column per lane, seconds from the command."""
    shifted = relative(data)
    lanes = sorted(shifted["lanes"])
    rows = []
    for key, text in JOB_EVENTS:
        if key in shifted["job"]:
            rows.append([f"job: {text}", f"{shifted['job'][key]:.2f}"] + [""] * max(0, len(lanes) - 1))
    for key, text in LANE_EVENTS:
        cells = [shifted["lanes"][lane].get(key) for lane in lanes]
        if any(cell is not None for cell in cells):
            rows.append([text] + ["-" if cell is None else f"{cell:.2f}" for cell in cells])
    if not rows:
        return "timeline: none recorded"
    from .report import format_table as table

    headers = ["timeline (s from the command)"] + (lanes or ["job"])
    width = len(headers)
    rows = [row[:width] + [""] * (width - len(row)) for row in rows]
    lines = [table(headers, rows)]
    spread = lane_spread(data)
    if spread is not None:
        lines.append(f"lanes' last frames finished {spread:.2f} s apart")
    return "\n".join(lines)
