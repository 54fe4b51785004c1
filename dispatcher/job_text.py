"""What the panel says about a job, as sentences read once: one headline, each error once, lane bars.

No bpy: the Blender panel draws a ``JobView``; tests and other front ends can build one from a JobStatus.
"""

from __future__ import annotations

import textwrap
import time
from dataclasses import dataclass, field

from .error_hints import clean, distinct, hint
from .lane_state import BACKOFF, FAILED, RENDERING, STARTING
from .status import JobStatus, LaneStatus

ICONS = {"starting": "TIME", "running": "RENDER_ANIMATION", "done": "CHECKMARK", "failed": "ERROR",
         "cancelled": "CANCEL", "stalled": "ERROR", "cancelling": "TIME", "encoding": "FILE_MOVIE",
         "queued": "SORTTIME", "idle": "RENDER_ANIMATION"}


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


def _frames(status: JobStatus | None) -> tuple[int, int, int]:
    frames = status.frames if status else {}
    return frames.get("done", 0), frames.get("total", 0), frames.get("skipped", 0)


def problems(status: JobStatus | None) -> list[Problem]:
    """Each distinct error once: failed frames grouped by error, then lane errors not seen there."""
    found: dict[str, Problem] = {}
    if status is None:
        return []
    failed = status.failed_frames
    for frame, error in sorted(failed.items(), key=lambda item: _frame_number(item[0])):
        text = clean(error or "failed")
        found.setdefault(text, Problem(text, hint(text))).frames.append(str(frame))
    lane_errors = [lane.last_error for lane in status.lanes]
    for text in distinct([*lane_errors, status.message]):
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


def stopped_headline(status: JobStatus, found: list[Problem]) -> tuple[str, str]:
    lanes = len(status.lanes)
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


def headline(
    status: JobStatus | None, *, active: bool, encoding: bool = False, cancelling: bool = False
) -> tuple[str, str, str]:
    """(kind, bar, note) for the job's state; ``active``: the dispatcher runs (or was just launched)."""
    done, total, skipped = _frames(status)
    state, phase = (status.state, status.phase or "") if status else ("starting", "")
    if encoding or (state == "running" and "encod" in phase):
        return "encoding", f"Encoding video — {done} frames", ""
    if state == "queued":  # phase: "Queued behind <job> (2 of 2 GPUs busy)"
        bar, _, why = phase.partition(" (")
        return "queued", bar or "Queued", why.rstrip(")")
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
        eta = status.eta_seconds
        left = f", {format_seconds(eta)} left" if eta is not None else ""
        return "running", f"Rendering — {done}/{total} frames{left}", ""
    if state == "done":
        elapsed = status.elapsed
        rendered = max(done - skipped, 0)
        rate = f" ({rendered / elapsed * 60:.0f} frames/min)" if elapsed and rendered > 1 else ""
        frames = "1 frame" if rendered == 1 else f"{rendered} frames"
        kept = f"{skipped} more were already there and kept" if skipped else ""
        return "done", f"Done — {frames} in {format_seconds(elapsed)}{rate}", kept
    if state == "cancelled":
        return "cancelled", f"Cancelled — {done}/{total} frames done", ""
    return ("failed", *stopped_headline(status, problems(status)))


def _timed_frame(lane: LaneStatus, name: str, frame: int, now: float | None) -> LaneView:
    """A frame with no sample count yet (CPU tiles, Eevee): the time it has taken, against the lane's usual."""
    started = lane.frame_started_at
    if not started:
        return LaneView(name, 0.0, f"frame {frame}")
    spent = max((time.time() if now is None else now) - started, 0.0)
    usual = lane.seconds_per_frame
    if usual:
        text = f"frame {frame} · {format_seconds(spent)} of ~{format_seconds(usual)}"
        return LaneView(name, min(spent / usual, 0.99), text)
    return LaneView(name, 0.0, f"frame {frame} · {format_seconds(spent)}")


def lane_view(lane: LaneStatus, total: int, now: float | None = None) -> LaneView:
    """One lane's bar: in-frame samples while rendering, the share of the job it did once stopped."""
    name, state = lane.name, lane.state
    frames_done, failures = lane.frames_done, lane.failures
    share = min(frames_done / total, 1.0) if total else 0.0
    did = f"{frames_done} frame{'s' if frames_done != 1 else ''}"
    if lane.blocklisted:
        return LaneView(name, share, f"stopped after {failures} failures · {did}", True)
    if "compil" in (lane.phase or ""):
        return LaneView(name, 0.0, "compiling GPU kernels")
    frame, sample, samples = lane.frame, lane.sample or 0, lane.samples
    if state == RENDERING and frame is not None:
        if samples and sample > 1:  # Cycles on the CPU reports 0, then 1, then all of them at the end
            return LaneView(name, min(sample / samples, 1.0), f"frame {frame} · {sample}/{samples} samples")
        return _timed_frame(lane, name, frame, now)
    if state in (STARTING, BACKOFF):
        return LaneView(name, 0.0, "starting" if state == STARTING else "restarting")
    return LaneView(name, share, f"{state} · {did}", state == FAILED)


def autotune_line(status: JobStatus | None) -> str:
    """The automatic layout's choice and why, in one sentence; empty when the layout was chosen by hand."""
    choice = status.autotune if status else None
    if not choice:
        return ""
    reason = (choice.get("reason") or "").split("; ")[0]
    return f"Automatic — {reason or choice.get('layout', 'per-card')}"


def lanes_line(lanes: list[LaneView]) -> str:
    """One line about the lanes while rendering: the only lane's bar text, or how many are busy."""
    if len(lanes) == 1:
        return f"{lanes[0].name}: {lanes[0].text}"
    busy = sum(text.text.startswith("frame ") for text in lanes)
    compiling = sum("compiling" in lane.text for lane in lanes)
    line = f"{busy} of {len(lanes)} lanes rendering" if lanes else ""
    return line + (f", {compiling} compiling GPU kernels" if compiling else "")


def job_view(status: JobStatus | None, *, active: bool, encoding: bool = False, cancelling: bool = False) -> JobView:
    """The whole job box from a status (None before the dispatcher wrote one)."""
    kind, bar, note = headline(status, active=active, encoding=encoding, cancelling=cancelling)
    done, total, _ = _frames(status)
    lanes = [lane_view(lane, total) for lane in status.lanes] if status else []
    factor = done / total if total else 0.0
    return JobView(kind, bar, note, factor, autotune_line(status), problems(status), lanes)


def wrap(text: str, width: int) -> list[str]:
    """Lines of at most ``width`` characters, broken between words (long paths broken where needed)."""
    return textwrap.wrap(text, max(width, 12), break_on_hyphens=False) or [""]
