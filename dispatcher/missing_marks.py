"""Frames rendered while files the scene needs were missing (``--allow-missing``) are remembered.

They are valid images of the wrong picture, so "skip frames that decode" would keep them forever.
``.grf-rendered-with-missing.json`` in the output folder lists them with what was missing; a later
run whose pre-flight finds a different set missing (typically none: the library was fixed) renders
them again, and they leave the list as they are redone.
"""

from __future__ import annotations

import json
import os

from .spec import write_json_atomic

NAME = ".grf-rendered-with-missing.json"


def _path(output_dir: str) -> str:
    return os.path.join(output_dir, NAME)


def read(output_dir: str) -> dict:
    try:
        with open(_path(output_dir), encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return {}
    ok = isinstance(data, dict) and isinstance(data.get("frames"), list)
    return data if ok else {}


def stale_frames(output_dir: str, missing_now: list[str]) -> set[int]:
    """Frames rendered with other files missing than are missing now: to be rendered again."""
    data = read(output_dir)
    if not data or sorted(data.get("missing") or []) == sorted(missing_now):
        return set()
    return {frame for frame in data["frames"] if isinstance(frame, int)}


def record(output_dir: str, frame: int, missing_now: list[str]) -> None:
    """Note a finished frame: listed when rendered with files missing, unlisted when rendered whole."""
    data = read(output_dir) or {"frames": [], "missing": sorted(missing_now)}
    frames = set(data["frames"])
    if missing_now:
        frames.add(frame)
        data["missing"] = sorted(missing_now)
    else:
        frames.discard(frame)
    if not frames:
        try:
            os.remove(_path(output_dir))
        except OSError:
            pass
        return
    data["frames"] = sorted(frames)
    write_json_atomic(_path(output_dir), data)
