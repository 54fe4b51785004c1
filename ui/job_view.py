"""Draw a job: a compact block of fixed height (buttons, one headline bar, three message lines, actions),
and the details below it (one bar per lane, each distinct error once with its hint).

The sentences come from ``dispatcher.job_text`` (no bpy). ``last_drawn`` keeps what the block showed last,
so a script driving a real Blender window can check the panel's own words.
"""

from __future__ import annotations

import os
import time

from .. import monitor
from ..dispatcher.job_text import JobView, job_view, lanes_line, wrap

MESSAGE_LINES = 3
ICON_CHARS = 4  # room the info button takes on the first message row, in characters
CHAR_PX = 6.0  # average width of a character of the UI font at scale 1.0, in pixels
last_drawn: dict = {}


def text_width(context, margin: int = 5) -> int:
    """How many characters fit on one line of the region being drawn."""
    region = getattr(context, "region", None)
    scale = context.preferences.system.ui_scale if getattr(context, "preferences", None) else 1.0
    if region is None or region.width <= 1:
        return 60
    return max(int(region.width / (CHAR_PX * scale)) - margin, 20)


def current_view(job_dir: str) -> JobView | None:
    if not job_dir:
        return None
    return job_view(
        monitor.status(job_dir),
        active=monitor.dispatcher_alive(job_dir),
        encoding=monitor.encoding(job_dir),
        cancelling=monitor.cancelling(job_dir),
    )


def idle_lines(scene) -> list[str]:
    import bpy

    from ..planning import output_target

    settings = scene.gpu_render_farm
    if settings.mode == "AUTO":
        mode = "Automatic — layout picked at start"
    else:
        mode = f"Mode: {settings.bl_rna.properties['mode'].enum_items[settings.mode].name}"
    folder, pattern = output_target(scene, bpy.data.filepath)
    try:
        folder = bpy.path.relpath(folder) if bpy.data.filepath else folder
    except ValueError:  # another drive (Windows)
        pass
    return [mode, f"Frames to {os.path.join(folder, pattern)}"]


def message_lines(scene, job_dir: str, view: JobView | None) -> list[str]:
    """What the lines under the headline say (before wrapping)."""
    from ..operators.resume_job import file_changed_since, snapshot_text

    if view is None:
        return idle_lines(scene)
    lines = [view.detail] if view.detail else []
    if view.kind == "running" and view.lanes:
        lines.append(lanes_line(view.lanes))
    if view.kind in ("cancelled", "stalled", "failed"):
        lines.insert(0, f"Resume renders {snapshot_text(job_dir)}")
    if view.note:
        lines.insert(0, view.note[0].upper() + view.note[1:])
    if view.kind in ("cancelled", "stalled", "failed", "done") and file_changed_since(job_dir):
        lines.insert(0 if view.kind == "done" else 1, "Your file changed since that snapshot: Render again to use it")
    if monitor.encode_errors.get(job_dir):
        lines.insert(0, f"Video encoding failed: {monitor.encode_errors[job_dir]}")
    if view.kind == "done" and not lines:
        lines.append(f"Frames in {status.output_dir if (status := monitor.status(job_dir)) else ''}")
    return lines


def draw_message(layout, lines: list[str], width: int) -> list[str]:
    """Exactly MESSAGE_LINES rows; a cut message gets an info button that shows it whole."""
    wrapped: list[str] = []
    for line in lines:  # the first row is narrower: the info button sits at its end
        first, *rest = wrap(line, width - ICON_CHARS if not wrapped else width)
        wrapped += [first, *(wrap(" ".join(rest), width) if rest else [])]
    shown = wrapped[:MESSAGE_LINES]
    cut = len(wrapped) > MESSAGE_LINES
    if cut:
        shown[-1] = shown[-1][: max(width - 2, 1)].rstrip() + " …"
    shown += [""] * (MESSAGE_LINES - len(shown))
    for index, line in enumerate(shown):
        row = layout.row()
        row.label(text=line)
        if index == 0 and (cut or lines):
            op = row.operator("grf.show_message", text="", icon="INFO", emboss=False)
            op.text = "\n".join(lines)
    return shown


def draw_actions(layout, job_dir: str, view: JobView | None) -> dict:
    """Cancel or Resume, Open Output, Play/Encode Video: always the same row, enabled when they apply."""
    alive = bool(job_dir) and monitor.dispatcher_alive(job_dir)
    kind = view.kind if view else "idle"
    status = monitor.status(job_dir) if job_dir else None
    split = layout.split(factor=0.4, align=True)
    buttons = {}

    def button(parent, idname, text, icon, enabled, label=None):
        sub = parent.row(align=True)
        sub.enabled = enabled
        sub.operator(idname, text=text if label is None else label, icon=icon)
        buttons[text] = enabled

    if alive or kind in ("idle", "done", "encoding"):
        button(split, "grf.cancel_job", "Cancel", "CANCEL", alive and kind != "cancelling")
    else:
        button(split, "grf.resume_job", "Resume", "PLAY", True)
    right = split.row(align=True)
    button(right, "grf.open_output", "Open Output", "FILE_FOLDER", bool(status and status.output_dir), "")
    if kind == "encoding":
        button(right, "grf.play_video", "Encoding…", "TIME", False)
    elif status and status.video and os.path.isfile(status.video):
        button(right, "grf.play_video", "Play Video", "PLAY", not alive)
    else:
        button(right, "grf.play_video", "Encode Video", "FILE_MOVIE", kind == "done" and not alive)
    return buttons


def draw_block(layout, context, where: str) -> None:
    """The fixed-height block: Render buttons, the headline bar, three message lines, the job's actions."""
    scene = context.scene
    job_dir = scene.gpu_render_farm.job_dir
    view = current_view(job_dir)
    busy = bool(job_dir) and monitor.is_active(job_dir)
    col = layout.column()
    row = col.split(factor=0.86, align=True)
    row.scale_y = 1.4
    row.enabled = not busy
    row.operator("grf.render_all", text="Render Animation on All GPUs", icon="RENDER_ANIMATION")
    row.operator("grf.render_all", text="", icon="RENDER_STILL").still = True  # tooltip: Render Image on All GPUs
    bar = view.bar if view else "No render yet"
    col.progress(factor=view.factor if view else 0.0, type="BAR", text=bar)
    lines = draw_message(col, message_lines(scene, job_dir, view), text_width(context))
    buttons = draw_actions(col, job_dir, view)
    last_drawn.update(where=where, time=time.time(), job_dir=job_dir, kind=view.kind if view else "idle",
                      headline=view.headline if view else bar, bar=bar,
                      factor=view.factor if view else 0.0, lines=lines, buttons=buttons, busy=busy)


def draw_details(layout, context, job_dir: str) -> None:
    """One bar per lane, then each distinct error once, wrapped whole, with its hint."""
    view = current_view(job_dir)
    if view is None:
        return
    last_drawn.update(lanes=[(lane.name, lane.text) for lane in view.lanes],
                      problems=[(problem.text, problem.hint) for problem in view.problems])
    width = text_width(context)
    col = layout.column(align=True)
    for lane in view.lanes:
        row = col.row()
        row.alert = lane.alert
        split = row.split(factor=0.22)
        split.label(text=lane.name, icon="ERROR" if lane.alert else "BLANK1")
        split.progress(factor=lane.factor, type="BAR", text=lane.text)
    for problem in view.problems:
        box = layout.box()
        col = box.column(align=True)
        col.alert = True
        frames = f"Frame {', '.join(problem.frames)}: " if problem.frames else ""
        for index, line in enumerate(wrap(frames + problem.text, width - 4)):
            col.label(text=line, icon="ERROR" if index == 0 else "BLANK1")
        if problem.hint:
            hint = box.column(align=True)
            for index, line in enumerate(wrap(problem.hint[0].upper() + problem.hint[1:], width - 4)):
                hint.label(text=line, icon="LIGHT" if index == 0 else "BLANK1")
    status = monitor.status(job_dir)
    if status is not None and status.missing_files:
        draw_missing(layout, status.missing_files)


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
