"""What the panel says about a job, as sentences read once: one headline, each error once, lane bars.

No bpy: the Blender panel draws a ``JobView``; tests and other front ends can build one from a status.
The status may be the dict of ``status.json`` or an object with the same fields.
"""

from __future__ import annotations

import textwrap
import time
from dataclasses import dataclass, field

from .error_hints import clean, distinct, hint

ICONS = {"starting": "TIME", "running": "RENDER_ANIMATION", "done": "CHECKMARK", "failed": "ERROR",
         "cancelled": "CANCEL", "stalled": "ERROR", "cancelling": "TIME", "encoding": "FILE_MOVIE",
         "queued": "SORTTIME", "idle": "RENDER_ANIMATION"}


def get(obj, name: str, default=None):
    """A field of a status dict or a status object."""
    if obj is None:
        return default
    value = obj.get(name, default) if isinstance(obj, dict) else getattr(obj, name, default)
    return default if value is None else value


def format_seconds(seconds) -> str:
    """``75`` -> ``1:15``, ``3725`` -> ``1:02:05``; ``--`` when unknown."""
    if seconds is None:
        return "--"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


@dataclass
class Problem:
    text: str  # the error, cleaned
    hint: str | None  # what to change, when the error is a known one
    frames: list[str] = field(default_factory=list)  # frames that failed with it


@dataclass
class LaneView:
    name: str
    factor: float
    text: str
    alert: bool = False


@dataclass
class JobView:
    """Everything the job box shows; ``kind`` is starting/running/encoding/done/failed/cancelled/...

    ``bar`` is short enough for the progress bar; ``note`` is the rest of the sentence (why, what to do).
    """

    kind: str
    bar: str
    note: str = ""
    factor: float = 0.0
    detail: str = ""
    problems: list[Problem] = field(default_factory=list)
    lanes: list[LaneView] = field(default_factory=list)

    @property
    def headline(self) -> str:
        return f"{self.bar}: {self.note}" if self.note else self.bar

    @property
    def icon(self) -> str:
        return ICONS.get(self.kind, "QUESTION")


def _frames(status) -> tuple[int, int, int]:
    frames = get(status, "frames", {})
    return get(frames, "done", 0), get(frames, "total", 0), get(frames, "skipped", 0)


def problems(status) -> list[Problem]:
    """Each distinct error once: failed frames grouped by error, then lane errors not seen there."""
    found: dict[str, Problem] = {}
    failed = get(status, "failed_frames", {}) or {}
    for frame, error in sorted(failed.items(), key=lambda item: _frame_number(item[0])):
        text = clean(error or "failed")
        found.setdefault(text, Problem(text, hint(text))).frames.append(str(frame))
    lane_errors = [get(lane, "last_error") for lane in get(status, "lanes", [])]
    for text in distinct([*lane_errors, get(status, "message")]):
        known = any(text in seen or seen in text for seen in found)  # a summary that quotes a frame's error
        if text.lower() not in ("cancelled", "done", "failed") and not known:
            found[text] = Problem(text, hint(text))
    return list(found.values())


def _frame_number(key) -> int:
    try:
        return int(key)
    except (TypeError, ValueError):
        return 0


def _why(problem: Problem) -> str:
    return problem.hint or problem.text


def stopped_headline(status, found: list[Problem]) -> tuple[str, str]:
    lanes = len(get(status, "lanes", []))
    where = " on every card" if lanes > 1 else ""
    with_frames = [problem for problem in found if problem.frames]
    if with_frames:
        frames = [frame for problem in with_frames for frame in problem.frames]
        what = f"frame {frames[0]} failed" if len(frames) == 1 else f"{len(frames)} frames failed"
        return f"Stopped — {what}{where}", _why(with_frames[0])
    if found:
        return "Stopped", _why(found[0])
    done, total, _ = _frames(status)
    return f"Stopped — {done}/{total} frames done", ""


def headline(status, *, active: bool, encoding: bool = False, cancelling: bool = False) -> tuple[str, str, str]:
    """(kind, bar, note) for the job's state; ``active``: the dispatcher runs (or was just launched)."""
    done, total, skipped = _frames(status)
    state, phase = get(status, "state", "starting"), get(status, "phase", "")
    if encoding or (state == "running" and "encod" in phase):
        return "encoding", f"Encoding video — {done} frames", ""
    if get(status, "queued_behind"):
        return "queued", f"Queued behind {get(status, 'queued_behind')}", ""
    if cancelling and active:
        return "cancelling", f"Cancelling — {done}/{total} frames done", ""
    if status is None or state == "starting":
        if not active and status is not None:
            return "stalled", "Interrupted before the first frame", "press Resume to start it again"
        if "compil" in phase:
            return "starting", "Starting — compiling GPU kernels", "the first render on a card can take minutes"
        return "starting", "Starting — launching the workers", ""
    if state == "running":
        if not active:
            return "stalled", f"Interrupted — {done}/{total} frames done", "press Resume to finish"
        eta = get(status, "eta_seconds")
        left = f", {format_seconds(eta)} left" if eta is not None else ""
        return "running", f"Rendering — {done}/{total} frames{left}", ""
    if state == "done":
        elapsed = get(status, "elapsed", 0.0)
        rendered = max(done - skipped, 0)
        rate = f" ({rendered / elapsed * 60:.0f} frames/min)" if elapsed and rendered > 1 else ""
        frames = "1 frame" if rendered == 1 else f"{rendered} frames"
        kept = f"{skipped} more were already there and kept" if skipped else ""
        return "done", f"Done — {frames} in {format_seconds(elapsed)}{rate}", kept
    if state == "cancelled":
        return "cancelled", f"Cancelled — {done}/{total} frames done", ""
    return ("failed", *stopped_headline(status, problems(status)))


def _timed_frame(lane, name: str, frame, now: float | None) -> LaneView:
    """A frame with no sample count yet (CPU tiles, Eevee): the time it has taken, against the lane's usual."""
    started = get(lane, "frame_started_at")
    if not started:
        return LaneView(name, 0.0, f"frame {frame}")
    spent = max((time.time() if now is None else now) - started, 0.0)
    usual = get(lane, "seconds_per_frame")
    if usual:
        text = f"frame {frame} · {format_seconds(spent)} of ~{format_seconds(usual)}"
        return LaneView(name, min(spent / usual, 0.99), text)
    return LaneView(name, 0.0, f"frame {frame} · {format_seconds(spent)}")


def lane_view(lane, total: int, now: float | None = None) -> LaneView:
    """One lane's bar: in-frame samples while rendering, the share of the job it did once stopped."""
    name, state = get(lane, "name", "?"), get(lane, "state", "?")
    frames_done, failures = get(lane, "frames_done", 0), get(lane, "failures", 0)
    share = min(frames_done / total, 1.0) if total else 0.0
    did = f"{frames_done} frame{'s' if frames_done != 1 else ''}"
    if get(lane, "blocklisted"):
        return LaneView(name, share, f"stopped after {failures} failures · {did}", True)
    if "compil" in get(lane, "phase", ""):
        return LaneView(name, 0.0, "compiling GPU kernels")
    frame, sample, samples = get(lane, "frame"), get(lane, "sample", 0), get(lane, "samples")
    if state == "rendering" and frame is not None:
        if samples and sample > 1:  # Cycles on the CPU reports 0, then 1, then all of them at the end
            return LaneView(name, min(sample / samples, 1.0), f"frame {frame} · {sample}/{samples} samples")
        return _timed_frame(lane, name, frame, now)
    if state in ("starting", "backoff"):
        return LaneView(name, 0.0, "starting" if state == "starting" else "restarting")
    return LaneView(name, share, f"{state} · {did}", state == "failed")


def autotune_line(status) -> str:
    """The automatic layout's choice and why, in one sentence; empty when the layout was chosen by hand."""
    choice = get(status, "autotune")
    if not choice:
        return ""
    reason = get(choice, "reason", "").split("; ")[0]
    return f"Automatic — {reason}" if reason else f"Automatic — {get(choice, 'layout', 'per-card')}"


def lanes_line(lanes: list[LaneView]) -> str:
    """One line about the lanes while rendering: the only lane's bar text, or how many are busy."""
    if len(lanes) == 1:
        return f"{lanes[0].name}: {lanes[0].text}"
    busy = sum(text.text.startswith("frame ") for text in lanes)
    compiling = sum("compiling" in lane.text for lane in lanes)
    line = f"{busy} of {len(lanes)} lanes rendering" if lanes else ""
    return line + (f", {compiling} compiling GPU kernels" if compiling else "")


def job_view(status, *, active: bool, encoding: bool = False, cancelling: bool = False) -> JobView:
    """The whole job box from a status (None before the dispatcher wrote one)."""
    kind, bar, note = headline(status, active=active, encoding=encoding, cancelling=cancelling)
    done, total, _ = _frames(status)
    lanes = [lane_view(lane, total) for lane in get(status, "lanes", [])]
    factor = done / total if total else 0.0
    return JobView(kind, bar, note, factor, autotune_line(status), problems(status), lanes)


def wrap(text: str, width: int) -> list[str]:
    """Lines of at most ``width`` characters, broken between words (long paths broken where needed)."""
    return textwrap.wrap(text, max(width, 12), break_on_hyphens=False) or [""]
