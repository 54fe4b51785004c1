"""Draw a job's progress: totals, ETA, one bar per lane, failures and the job buttons."""

from __future__ import annotations

import os

from .. import monitor

STATE_ICONS = {"starting": "TIME", "running": "RENDER_ANIMATION", "done": "CHECKMARK", "failed": "ERROR",
               "cancelled": "CANCEL"}


def format_seconds(seconds) -> str:
    """``75`` -> ``1:15``, ``3725`` -> ``1:02:05``; ``--`` when unknown."""
    if seconds is None:
        return "--"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def lane_text(lane: dict) -> tuple[float, str]:
    """(bar fraction, text) for one lane."""
    state = lane.get("state") or "?"
    if lane.get("blocklisted"):
        return 0.0, f"blocklisted after {lane.get('failures', 0)} failures"
    if lane.get("phase") and "compil" in lane["phase"]:
        return 0.0, "compiling GPU kernels"
    frame, sample, samples = lane.get("frame"), lane.get("sample"), lane.get("samples")
    if state == "rendering" and frame is not None:
        if sample is not None and samples:
            return min(sample / samples, 1.0), f"frame {frame}  {sample}/{samples} samples"
        return 0.0, f"frame {frame}"
    return (1.0 if state == "stopped" else 0.0), f"{state}, {lane.get('frames_done', 0)} frames"


def draw_lanes(layout, lanes: list[dict]) -> None:
    for lane in lanes:
        row = layout.row()
        failed = lane.get("blocklisted") or lane.get("state") == "failed"
        row.alert = bool(failed)
        split = row.split(factor=0.25)
        split.label(text=lane.get("name", "?"), icon="ERROR" if failed else "BLANK1")
        factor, text = lane_text(lane)
        split.progress(factor=factor, type="BAR", text=text)
        if lane.get("last_error") and failed:
            error = layout.row()
            error.alert = True
            error.label(text=f"{lane.get('name')}: {lane['last_error']}", icon="BLANK1")


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


def draw_job(layout, job_dir: str, status: dict | None) -> None:
    """The job box; `status` is what `jobs.read_status` returned (None before the first write)."""
    box = layout.box()
    if status is None:
        if os.path.isfile(os.path.join(job_dir, "spec.json")):
            box.label(text="Starting the render...", icon="TIME")
            box.operator("grf.cancel_job", text="Cancel", icon="CANCEL")
        else:
            box.label(text=f"Job folder missing: {job_dir}", icon="ERROR")
        return
    state = status.get("state", "?")
    phase = status.get("phase") or ""
    box.label(text=f"{state.capitalize()}: {phase}" if phase else state.capitalize(),
              icon=STATE_ICONS.get(state, "QUESTION"))
    if "compil" in phase:
        box.label(text="Compiling GPU kernels: the first render on a card can take minutes", icon="TIME")
    frames = status.get("frames") or {}
    total, done = frames.get("total") or 0, frames.get("done") or 0
    box.progress(factor=done / total if total else 0.0, type="BAR", text=f"{done} / {total} frames")
    elapsed, eta = format_seconds(status.get("elapsed")), format_seconds(status.get("eta_seconds"))
    box.label(text=f"Elapsed {elapsed}   ETA {eta}")
    draw_lanes(box, status.get("lanes") or [])
    if status.get("failed_frames"):
        draw_failed(box, status["failed_frames"])
    if monitor.stalled(job_dir):
        box.label(text="The render stopped unexpectedly: press Resume to finish it", icon="ERROR")
    if status.get("missing_files"):
        draw_missing(box, status["missing_files"])
    elif status.get("message"):
        box.label(text=status["message"], icon="INFO")
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
        elif status.get("video"):
            row.operator("grf.play_video", text="Play Video", icon="PLAY")
        else:
            row.operator("grf.play_video", text="Encode Video", icon="FILE_MOVIE")
