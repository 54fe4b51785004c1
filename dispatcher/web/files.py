"""Files the dashboard may hand out: frames and videos inside a job's output folder, and nothing else.

A request names a path relative to the output folder. It is refused when it is absolute, has a ``..``
part, a NUL or backslash, does not end in an image or video extension, or when its real path (symlinks
followed) is not inside the output folder's real path.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections import OrderedDict

SERVED_EXTENSIONS = {
    ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".tif": "image/tiff",
    ".tiff": "image/tiff", ".exr": "image/x-exr", ".mp4": "video/mp4",
}  # fmt: skip
THUMB_SIZE = (320, 180)
_thumbs: OrderedDict[tuple, bytes] = OrderedDict()
_timelines: dict[str, tuple[tuple, bytes]] = {}


def safe_output_file(output_dir: str, relative: str) -> str | None:
    """The real path of ``relative`` inside ``output_dir``, or None when it may not be served."""
    if not relative or "\x00" in relative or "\\" in relative or relative.startswith("/"):
        return None
    parts = relative.split("/")
    if any(part in ("", ".", "..") for part in parts):
        return None
    if os.path.splitext(relative)[1].lower() not in SERVED_EXTENSIONS:
        return None
    base = os.path.realpath(output_dir)
    path = os.path.realpath(os.path.join(base, *parts))
    if os.path.commonpath([base, path]) != base or not os.path.isfile(path):
        return None
    return path


def media_type(path: str) -> str:
    return SERVED_EXTENSIONS.get(os.path.splitext(path)[1].lower(), "application/octet-stream")


def thumbnail(path: str) -> bytes | None:
    """A small JPEG of an image file (cached by path and modification time); None if undecodable."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    key = (path, info.st_mtime_ns, info.st_size)
    if key in _thumbs:
        _thumbs.move_to_end(key)
        return _thumbs[key]
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.thumbnail(THUMB_SIZE)
            out = io.BytesIO()
            image.convert("RGB").save(out, "JPEG", quality=85)
    except (OSError, ValueError, SyntaxError):
        return None
    _thumbs[key] = out.getvalue()
    while len(_thumbs) > 256:
        _thumbs.popitem(last=False)
    return _thumbs[key]


def timeline_png(job_dir: str) -> bytes | None:
    """The per-lane timeline that ``report --png`` draws, redrawn only when frames.jsonl changed."""
    from ..chart import timeline_png as draw

    try:
        info = os.stat(os.path.join(job_dir, "frames.jsonl"))
    except OSError:
        return None
    key = (info.st_mtime_ns, info.st_size)
    cached = _timelines.get(job_dir)
    if cached and cached[0] == key:
        return cached[1]
    with tempfile.TemporaryDirectory(prefix="grf-timeline-") as scratch:  # private (0700), removed at once
        target = os.path.join(scratch, "timeline.png")
        try:
            draw(job_dir, target)
        except (OSError, ValueError):
            return None
        with open(target, "rb") as handle:
            data = handle.read()
    _timelines.pop(job_dir, None)
    _timelines[job_dir] = (key, data)
    while len(_timelines) > 32:
        _timelines.pop(next(iter(_timelines)))
    return data
