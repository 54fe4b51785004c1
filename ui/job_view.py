"""Draw a job's progress: totals, ETA, one bar per lane, failures and the job buttons."""

from __future__ import annotations

import os

from .. import monitor
from ..dispatcher.lane_state import FAILED, RENDERING, STOPPED
from ..dispatcher.status import JobStatus, LaneStatus

STATE_ICONS = {"starting": "TIME", "running": "RENDER_ANIMATION", "done": "CHECKMARK", "failed": "ERROR",
               "cancelled": "CANCEL", "queued": "SORTTIME"}


def format_seconds(seconds) -> str:
    """``75`` -> ``1:15``, ``3725`` -> ``1:02:05``; ``--`` when unknown."""
    if seconds is None:
        return "--"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def lane_text(lane: LaneStatus) -> tuple[float, str]:
    """(bar fraction, text) for one lane."""
    state = lane.state or "?"
    if lane.blocklisted:
        return 0.0, f"blocklisted after {lane.failures} failures"
    if lane.phase and "compil" in lane.phase:
        return 0.0, "compiling GPU kernels"
    frame, sample, samples = lane.frame, lane.sample, lane.samples
    if state == RENDERING and frame is not None:
        if sample is not None and samples:
            return min(sample / samples, 1.0), f"frame {frame}  {sample}/{samples} samples"
        return 0.0, f"frame {frame}"
    return (1.0 if state == STOPPED else 0.0), f"{state}, {lane.frames_done} frames"


def draw_lanes(layout, lanes: list[LaneStatus]) -> None:
    for lane in lanes:
        row = layout.row()
        failed = lane.blocklisted or lane.state == FAILED
        row.alert = failed
        split = row.split(factor=0.25)
        split.label(text=lane.name, icon="ERROR" if failed else "BLANK1")
        factor, text = lane_text(lane)
        split.progress(factor=factor, type="BAR", text=text)
        if lane.last_error and failed:
            error = layout.row()
            error.alert = True
            error.label(text=f"{lane.name}: {lane.last_error}", icon="BLANK1")


def draw_failed(layout, failed: dict) -> None:
    col = layout.column()
    col.alert = True
    names = ", ".join(sorted(failed, key=lambda key: int(key) if key.lstrip("-").isdigit() else 0))
    col.label(text=f"{len(failed)} failed frame(s): {names}", icon="ERROR")
    first = next(iter(failed.values()))
    if first:
        col.label(text=str(first)[:200])


def draw_missing(layout, missing: list) -> None:
    """The pre-flight refused: name the missing files and offer to render without them."""
    warning = layout.box()
    warning.alert = True
    warning.label(text=f"{len(missing)} file(s) the scene needs are missing:", icon="ERROR")
    for path in missing[:5]:
        warning.label(text=str(path), icon="BLANK1")
    if len(missing) > 5:
        warning.label(text=f"and {len(missing) - 5} more", icon="BLANK1")
    warning.operator("grf.render_all", text="Render Anyway", icon="RENDER_ANIMATION").allow_missing = True


def draw_job(layout, job_dir: str, status: JobStatus | None) -> None:
    """The job box; `status` is what `jobs.read_status` returned (None before the first write)."""
    box = layout.box()
    if status is None:
        if os.path.isfile(os.path.join(job_dir, "spec.json")):
            box.label(text="Starting the render...", icon="TIME")
            box.operator("grf.cancel_job", text="Cancel", icon="CANCEL")
        else:
            box.label(text=f"Job folder missing: {job_dir}", icon="ERROR")
        return
    state = status.state or "?"
    phase = status.phase or ""
    title = phase if state == "queued" else f"{state.capitalize()}: {phase}" if phase else state.capitalize()
    box.label(text=title,  # queued: "Queued behind <job> (2 of 2 GPUs busy)"
              icon=STATE_ICONS.get(state, "QUESTION"))
    if "compil" in phase:
        box.label(text="Compiling GPU kernels: the first render on a card can take minutes", icon="TIME")
    frames = status.frames
    total, done = frames.get("total") or 0, frames.get("done") or 0
    box.progress(factor=done / total if total else 0.0, type="BAR", text=f"{done} / {total} frames")
    elapsed, eta = format_seconds(status.elapsed), format_seconds(status.eta_seconds)
    box.label(text=f"Elapsed {elapsed}   ETA {eta}")
    draw_lanes(box, status.lanes)
    if status.failed_frames:
        draw_failed(box, status.failed_frames)
    if monitor.stalled(job_dir):
        box.label(text="The render stopped unexpectedly: press Resume to finish it", icon="ERROR")
    if status.missing_files:
        draw_missing(box, status.missing_files)
    elif status.message:
        box.label(text=status.message, icon="INFO")
    if monitor.encode_errors.get(job_dir):
        box.label(text=f"Video encoding failed: {monitor.encode_errors[job_dir]}", icon="ERROR")

    row = box.row(align=True)
    if monitor.is_active(job_dir):
        row.operator("grf.cancel_job", text="Cancel", icon="CANCEL")
    elif state != "done" or frames.get("failed") or frames.get("remaining"):
        row.operator("grf.resume_job", text="Resume", icon="PLAY")
    row.operator("grf.open_output", text="Open Output", icon="FILE_FOLDER")
    if state == "done":
        if monitor.encoding(job_dir):
            row.label(text="Encoding video...", icon="TIME")
        elif status.video:
            row.operator("grf.play_video", text="Play Video", icon="PLAY")
        else:
            row.operator("grf.play_video", text="Encode Video", icon="FILE_MOVIE")
