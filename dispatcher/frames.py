"""Frame lists in Blender-like syntax: ``1-250``, ``1-100x2``, ``5,9,12-20``, ``-3--1``."""

from __future__ import annotations

import re

_RANGE = re.compile(
    r"^(?P<start>-?[0-9]{1,30})(?:\s*(?:-|\.\.)\s*(?P<end>-?[0-9]{1,30})(?:\s*[x:]\s*(?P<step>[0-9]{1,30}))?)?$"
)
# Blender's own limits (MINAFRAME, MAXFRAME): it clamps any other frame number to these, so frame
# 2000000 would be rendered as frame 1048574 under another frame's name.
MIN_FRAME, MAX_FRAME = -1048574, 1048574


class FrameSyntaxError(ValueError):
    """The frame string cannot be read or describes no frame."""


def parse_frames(text: str) -> list[int]:
    """Sorted unique frames described by ``text``; raises FrameSyntaxError on bad or empty input."""
    if text is None or not str(text).strip():
        raise FrameSyntaxError("empty frame range")
    frames: set[int] = set()
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        match = _RANGE.match(part)
        if not match:
            raise FrameSyntaxError(f"cannot read frames {part!r} (use e.g. 1-250, 1-100x2, 5,9,12-20)")
        start = int(match["start"])
        end = int(match["end"]) if match["end"] is not None else start
        step = int(match["step"]) if match["step"] is not None else 1
        if step < 1:
            raise FrameSyntaxError(f"frame step must be 1 or more in {part!r}")
        if end < start:
            raise FrameSyntaxError(f"reversed frame range {part!r}: the end comes before the start")
        check_bounds(start, end, part)
        frames.update(range(start, end + 1, step))
    if not frames:
        raise FrameSyntaxError("empty frame range")
    return sorted(frames)


def check_bounds(start: int, end: int, what: str, low: int = MIN_FRAME, high: int = MAX_FRAME) -> None:
    """Refuse frames Blender cannot render (checked before any list is built, so no MemoryError)."""
    if start < low or end > high:
        raise FrameSyntaxError(f"frames {what!r} are outside what Blender renders ({low} to {high})")


def scene_frames(start: int, end: int, step: int = 1) -> list[int]:
    """The frames Blender's own animation render would produce for a scene range."""
    if end < start:
        raise FrameSyntaxError(f"the scene's frame range {start}-{end} is empty")
    return list(range(start, end + 1, max(1, step)))


def format_frames(frames: list[int]) -> str:
    """Compact text for a frame list: [1,2,3,7,9,11] -> '1-3,7-11x2'."""
    frames = sorted(set(frames))
    parts: list[str] = []
    index = 0
    while index < len(frames):
        start = frames[index]
        if index + 1 < len(frames):
            step = frames[index + 1] - start
            end_index = index + 1
            while end_index + 1 < len(frames) and frames[end_index + 1] - frames[end_index] == step:
                end_index += 1
            if end_index - index >= 2 or step == 1:
                end = frames[end_index]
                parts.append(f"{start}-{end}" if step == 1 else f"{start}-{end}x{step}")
                index = end_index + 1
                continue
        parts.append(str(start))
        index += 1
    return ",".join(parts)


def output_path(directory: str, pattern: str, frame: int, extension: str) -> str:
    """Blender's frame-number substitution: the last run of ``#`` becomes the zero-padded frame."""
    import os

    runs = list(re.finditer(r"#+", pattern))
    if runs:
        run = runs[-1]
        width = len(run.group())
        number = f"-{abs(frame):0{width}d}" if frame < 0 else f"{frame:0{width}d}"
        name = pattern[: run.start()] + number + pattern[run.end() :]
    else:
        name = f"{pattern}{frame:04d}"
    if extension and not name.lower().endswith(extension.lower()):
        name += extension
    return os.path.join(directory, name)
