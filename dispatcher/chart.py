"""Charts of jobs: one timeline panel per job (a bar per frame, one row per lane) and frames/min bars."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

from .report import Job, _number, load_job

_PALETTE = [(66, 133, 244), (52, 168, 83), (251, 188, 5), (171, 71, 188), (0, 172, 193), (255, 112, 67)]
_FAILED = (219, 68, 55)
_SKIPPED = (200, 200, 200)
_SETUP = (225, 225, 232)
_TEXT = (30, 30, 30)
_GRID = (232, 232, 232)


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):
        return ImageFont.load_default()


def _nice_step(span: float, target_ticks: int = 8) -> float:
    raw = max(span, 1e-6) / target_ticks
    magnitude = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if raw <= factor * magnitude:
            return factor * magnitude
    return 10 * magnitude


@dataclass
class _Canvas:
    """What every panel shares: the drawing, its fonts and the time axis."""

    draw: Any
    fonts: tuple  # (normal, small, big)
    label_w: int
    plot_w: int
    span: float
    scale: float
    step: float
    row_h: int = 16
    gap: int = 2


def draw_chart(
    jobs: list[Job],
    png_path: str,
    title: str = "",
    throughput: bool = True,
    ideal_fpm: float | None = None,
    width: int = 1400,
) -> str:
    """One timeline panel per job on a shared time axis, then frames/min per job; returns png_path."""
    from PIL import Image, ImageDraw

    label_w, right = 210, 30
    plot_w = width - label_w - right
    span = max([job.wall for job in jobs] + [1e-3])
    heights = [34 + max(1, len(job.lane_names())) * 18 + 14 for job in jobs]
    bars_h = (40 + 24 * (len(jobs) + (1 if ideal_fpm else 0))) if throughput and jobs else 0
    image = Image.new("RGB", (width, 50 + sum(heights) + bars_h + 20), "white")
    canvas = _Canvas(ImageDraw.Draw(image), (_font(13), _font(11), _font(16)), label_w, plot_w, span,
                     plot_w / span, _nice_step(span))  # fmt: skip
    small = canvas.fonts[1]
    canvas.draw.text((10, 10), title or "frames per lane over time", fill=_TEXT, font=canvas.fonts[2])
    canvas.draw.text((label_w, 32), f"seconds since start (tick {canvas.step:g} s); gray = start-up, red = failed",
                     fill=_TEXT, font=small)  # fmt: skip
    y = 50
    for job, panel_h in zip(jobs, heights, strict=True):
        _draw_panel(canvas, job, y)
        y += panel_h
    if throughput and jobs:
        _draw_throughput(canvas, jobs, y + 10, ideal_fpm)
    os.makedirs(os.path.dirname(os.path.abspath(png_path)) or ".", exist_ok=True)
    image.save(png_path)
    return png_path


def _draw_panel(canvas: _Canvas, job: Job, y: int) -> None:
    """A job's header, its time grid and one row of frame bars per lane."""
    draw, (font, small, _big) = canvas.draw, canvas.fonts
    lanes = job.lane_names() or ["(no frames)"]
    header = f"{job.title}: wall {job.wall:.1f} s, {job.frames_done} frames, "
    header += f"{job.frames_per_minute:.1f} frames/min"
    if job.frames_failed:
        header += f", {job.frames_failed} failed"
    if job.note:
        header += f"  ({job.note})"
    draw.text((10, y + 4), header, fill=_TEXT, font=font)
    top = y + 24
    bottom = top + len(lanes) * (canvas.row_h + canvas.gap)
    tick = 0.0
    while tick <= canvas.span + 1e-9:
        x = canvas.label_w + tick * canvas.scale
        draw.line([(x, top), (x, bottom)], fill=_GRID)
        draw.text((x + 2, bottom), f"{tick:g}", fill=(120, 120, 120), font=small)
        tick += canvas.step
    for row, lane in enumerate(lanes):
        row_top = top + row * (canvas.row_h + canvas.gap)
        draw.text((10, row_top + 1), lane[:30], fill=_TEXT, font=small)
        for record in job.records:
            if str(record.get("lane", "?")) == lane:
                _draw_frame(canvas, record, job.t0, row_top)


def _draw_frame(canvas: _Canvas, record: dict, t0: float, row_top: int) -> None:
    """One frame (or start-up) bar, its frame number inside when it fits."""
    start, end = _number(record.get("start")), _number(record.get("end"))
    if start is None or end is None:
        return
    draw, small = canvas.draw, canvas.fonts[1]
    x0 = canvas.label_w + (start - t0) * canvas.scale
    x1 = max(x0 + 1, canvas.label_w + (end - t0) * canvas.scale)
    status = record.get("status", "done")
    frame = record.get("frame")
    if status == "setup":
        color = _SETUP
    elif status == "failed":
        color = _FAILED
    elif status == "skipped":
        color = _SKIPPED
    else:
        color = _PALETTE[(frame or 0) % len(_PALETTE)]
    draw.rectangle([x0, row_top, x1 - 1 if x1 - x0 > 2 else x1, row_top + canvas.row_h], fill=color)
    text = str(frame) if status != "setup" and frame is not None else ""
    if text and draw.textlength(text, font=small) + 4 < x1 - x0:
        draw.text((x0 + 2, row_top + 2), text, fill="white" if status != "skipped" else _TEXT, font=small)


def _draw_throughput(canvas: _Canvas, jobs: list[Job], y: int, ideal_fpm: float | None) -> None:
    """Frames/min bars, one per job, and the ideal bound when given."""
    draw, (font, small, _big) = canvas.draw, canvas.fonts
    draw.text((10, y), "throughput (frames/min; longer is better)", fill=_TEXT, font=font)
    y += 22
    entries = [(job.title, job.frames_per_minute, _PALETTE[index % len(_PALETTE)]) for index, job in enumerate(jobs)]
    if ideal_fpm:
        entries.append(("ideal bound", ideal_fpm, (150, 150, 150)))
    measured = max([job.frames_per_minute for job in jobs] + [1e-6])
    # an ideal bound far above every approach (start-up-bound tiny jobs) is drawn clipped
    top_fpm = max(measured, min(ideal_fpm or 0.0, 1.5 * measured))
    for name, value, color in entries:
        length = canvas.plot_w * 0.85 * min(value, top_fpm) / top_fpm
        draw.text((10, y + 2), name[:34], fill=_TEXT, font=small)
        draw.rectangle([canvas.label_w, y, canvas.label_w + max(1, length), y + 16], fill=color)
        text = f"{value:.1f}" + (" (off scale)" if value > top_fpm else "")
        draw.text((canvas.label_w + length + 6, y + 2), text, fill=_TEXT, font=small)
        y += 24


def timeline_png(job_dir: str, png_path: str) -> str:
    """Draw one job's per-lane timeline (Gantt chart) to png_path; returns png_path."""
    job = load_job(job_dir)
    return draw_chart([job], png_path, title=f"{job.title} - per-lane timeline", throughput=False)
