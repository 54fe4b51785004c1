"""Which frames of a job are done with every file they made (frames.jsonl), and the lanes' temporary folders.

A frame handed in by a worker is checked and moved into place by frame_checks.py."""

from __future__ import annotations

import os
from collections.abc import Callable

from .images import check_image


def recorded_files(frames_log: str) -> dict[int, list[str]]:
    """Every file of each frame this job finished, from frames.jsonl (frames that made several files)."""
    import json

    found: dict[int, list[str]] = {}
    try:
        with open(frames_log, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                files = record.get("files") if isinstance(record, dict) and record.get("status") == "done" else None
                if isinstance(files, list):
                    found[record["frame"]] = [path for path in record["files"] if isinstance(path, str)]
    except OSError:
        pass
    return found


def plan_overrides(frames: list[int], final_of: Callable[[int], str], job_dir: str, several_files: bool,
                   missing_now: list[str]) -> tuple[set[int], set[int]]:  # fmt: skip
    """(redo, own) for the folder's manifest: ``redo`` is rendered whatever the manifest says: frames
    rendered while other files than now were missing (missing_marks) and, in a scene whose frames make
    several files (File Output nodes, stereo), every frame but ``own``: those this job recorded with all
    their files in frames.jsonl, each still decoding (the manifest knows one main image per frame)."""
    from . import missing_marks

    output_dir = os.path.dirname(final_of(frames[0])) if frames else ""
    stale = missing_marks.stale_frames(output_dir, missing_now) & set(frames)
    if not several_files:
        return stale, set()
    own = frames_done_before(frames, os.path.join(job_dir, "frames.jsonl")) - stale
    return set(frames) - own, own


def decode_all(paths: list[str]) -> list[bool]:
    """Whether each file decodes, on every core (the decoders release the GIL): a resume of a long job
    checks every frame already there before it starts."""
    from concurrent.futures import ThreadPoolExecutor

    present = [os.path.exists(path) for path in paths]
    if sum(present) < 2:
        return [found and check_image(path) is None for path, found in zip(paths, present, strict=True)]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        checked = zip(paths, present, strict=True)
        problems = pool.map(lambda item: check_image(item[0]) if item[1] else "missing", checked)
        return [problem is None for problem in problems]


def frames_done_before(frames: list[int], frames_log: str) -> set[int]:
    """Frames with several files count as done only when this job recorded them all and all decode."""
    recorded = recorded_files(frames_log)
    wanted = [frame for frame in frames if recorded.get(frame)]
    checks = decode_all([path for frame in wanted for path in recorded[frame]])
    done, index = set(), 0
    for frame in wanted:
        count = len(recorded[frame])
        if all(checks[index : index + count]):
            done.add(frame)
        index += count
    return done


def remove_temp_folders(output_dir: str, folders: list[str]) -> None:
    """The lanes' private ``.grf-<lane>-p<pid>-*`` folders (File Output nodes', the main image's) once the job's
    workers are gone; a folder whose worker still runs belongs to another job writing there too (File Output
    folders are not locked) and stays."""
    import glob
    import re
    import shutil

    import psutil

    for parent in {output_dir, *folders}:
        for folder in glob.glob(os.path.join(glob.escape(parent), ".grf-*")):
            owner = re.match(r"\.grf-.*?-p(\d+)-", os.path.basename(folder))
            if owner and psutil.pid_exists(int(owner.group(1))):
                continue
            if os.path.isdir(folder) and not os.path.islink(folder):
                shutil.rmtree(folder, ignore_errors=True)
