"""A word when a job ends: a desktop notification where the desktop offers one, and a JSON POST.

Both are best effort: every failure (no desktop, no notify-send, a URL that does not answer, a server
error) is logged to the job's dispatcher log at most and never changes the job's outcome.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from urllib.parse import urlsplit

from .status import JobStatus

URL_TIMEOUT = 5.0  # seconds for the whole POST; an unreachable receiver must not hold the job's end
DESKTOP_TIMEOUT = 3.0
USER_AGENT = "gpu-render-farm-notify/1"


class NotifyUrlError(ValueError):
    """A --notify-url that is not an http(s) URL."""


def check_url(url: str) -> str:
    """Return the URL when it is http(s) with a host; raise NotifyUrlError otherwise."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise NotifyUrlError(f"notify URL must be http:// or https:// with a host, not {url!r}")
    return url


def summary(status: JobStatus | dict, spec=None) -> dict:
    """The small JSON a receiver gets: job, state, frames, wall time, failures, output path."""
    if not isinstance(status, JobStatus):
        status = JobStatus.from_json(status)
    frames = status.frames
    return {
        "event": "job-ended",
        "job": status.job_id or getattr(spec, "job_id", None),
        "state": status.state,
        "blend": status.blend or getattr(spec, "blend", None),
        "frames": {key: frames.get(key, 0) for key in ("done", "total", "rendered", "skipped", "failed")},
        "wall_seconds": status.elapsed,
        "failures": [{"frame": int(frame), "error": error} for frame, error in list(status.failed_frames.items())[:20]],
        "message": status.message or status.error or "",
        "output": status.output_dir or getattr(spec, "output_dir", None),
        "video": status.video,
    }


def post_json(url: str, payload: dict, timeout: float = URL_TIMEOUT) -> str | None:
    """POST payload as JSON; returns None on a 2xx answer, else a one-line reason."""
    data = json.dumps(payload).encode("utf-8")
    request = urllib.request.Request(
        check_url(url), data=data, method="POST",
        headers={"Content-Type": "application/json", "User-Agent": USER_AGENT},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (scheme checked above)
            return None if 200 <= response.status < 300 else f"HTTP {response.status}"
    except urllib.error.HTTPError as error:
        return f"HTTP {error.code}"
    except (urllib.error.URLError, OSError, ValueError) as error:
        return f"{type(error).__name__}: {getattr(error, 'reason', error)}"


def desktop_command(title: str, body: str, urgent: bool) -> list[str] | None:
    """How this desktop shows a notification: notify-send, else org.freedesktop.Notifications over
    gdbus; None on a machine with no desktop session (a headless render server)."""
    if sys.platform != "linux":
        return None
    if not any(os.environ.get(name) for name in ("DBUS_SESSION_BUS_ADDRESS", "DISPLAY", "WAYLAND_DISPLAY")):
        return None
    program = shutil.which("notify-send")
    if program:
        return [program, "--app-name=GPU Render Farm", f"--urgency={'critical' if urgent else 'normal'}", title, body]
    gdbus = shutil.which("gdbus")
    if gdbus and os.environ.get("DBUS_SESSION_BUS_ADDRESS"):
        return [gdbus, "call", "--session", "--dest", "org.freedesktop.Notifications",
                "--object-path", "/org/freedesktop/Notifications", "--method", "org.freedesktop.Notifications.Notify",
                "GPU Render Farm", "0", "", title, body, "[]", "{}", "-1"]  # fmt: skip
    return None


def desktop_notify(payload: dict) -> str | None:
    """Show a desktop notification when the desktop offers one; None when shown or skipped."""
    frames = payload["frames"]
    title = f"Render {payload['state']}: {payload['job']}"
    body = f"{frames['done']}/{frames['total']} frames, {frames['failed']} failed"
    if payload.get("wall_seconds") is not None:
        body += f", {payload['wall_seconds']:.0f} s"
    argv = desktop_command(title, body, urgent=payload["state"] != "done")
    if argv is None:
        return None
    try:
        subprocess.run(argv, timeout=DESKTOP_TIMEOUT, check=False, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    except (OSError, subprocess.SubprocessError) as error:
        return f"desktop notification failed: {error}"
    return None


def notify_job_end(job_dir: str, since: float = 0.0) -> list[str]:
    """Once a job's run is over: tell the desktop and the spec's notify URL how it ended, when it ended
    (done, failed or cancelled, per a status.json written after ``since``). Returns what failed; never raises."""
    from . import jobs

    try:
        status, spec = jobs.read_status(job_dir), jobs.load_spec(job_dir)
    except Exception as error:  # an unreadable job folder is reported by the runner, not here
        return [f"notification skipped: {error}"]
    if status is None or not status.is_terminal or (status.updated_at or 0.0) < since:
        return []  # still going, or an earlier run's end: nothing new to tell
    return send_job_end(status, spec)


def send_job_end(status: JobStatus | dict, spec=None, url: str | None = None) -> list[str]:
    """Send the job-ended summary to the desktop and the notify URL; returns what failed (never raises)."""
    problems: list[str] = []
    try:
        payload = summary(status, spec)
        problem = desktop_notify(payload)
        if problem:
            problems.append(problem)
        url = url or getattr(spec, "notify_url", None)
        if url:
            problem = post_json(url, payload)
            if problem:
                problems.append(f"notify URL {url}: {problem}")
    except Exception as error:  # a notification must never fail the job
        problems.append(f"notification failed: {error}")
    for problem in problems:
        print(f"warning: {problem}", file=sys.stderr)
    return problems
