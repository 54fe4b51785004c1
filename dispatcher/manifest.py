"""Job identity in the output folder: which job rendered which frame, from which .blend content and settings.

``<output>/.grf-manifest.jsonl`` gets one line per frame put in place (the last line for a file wins):
the file name, the frame, the job id, the .blend's path and SHA-256 (of the snapshot the workers
opened), a hash of the settings that change pixels, and the file's size and modification time. Only
the job holding the folder's write lock appends (output_lock), so lines never interleave.

Planning a run with it (``classify``):
  * a frame this job already put in place, whose file still has the recorded size and time, is done;
  * otherwise, with the overwrite policy, the frame is rendered;
  * with the skip policy, a valid existing file is kept and counted by where it came from (this job
    with the same file and settings, another .blend, an earlier version of this .blend, other
    settings, or unknown), so the summary can say so.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TextIO

MANIFEST = ".grf-manifest.jsonl"


def file_hash(path: str) -> str:
    """SHA-256 of a file's content, read in blocks."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def settings_hash(settings: dict) -> str:
    """A short stable hash of the render settings that change the pixels."""
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Identity:
    """What produced a frame: the job, the .blend (path and content) and the settings."""

    job_id: str
    blend: str
    blend_hash: str
    settings: str


@dataclass
class Classified:
    """The outcome of planning a run against the folder's manifest."""

    to_render: list[int] = field(default_factory=list)
    done_before: list[int] = field(default_factory=list)  # this job's own frames, still intact
    kept: list[int] = field(default_factory=list)  # existing frames kept (skip policy)
    kept_from: Counter = field(default_factory=Counter)  # "job X (another .blend ...)" -> count

    def kept_summary(self) -> str | None:
        if not self.kept:
            return None
        parts = ", ".join(f"{count} from {origin}" for origin, count in self.kept_from.most_common())
        return f"kept {len(self.kept)} existing frame(s) instead of rendering them: {parts}"


class Manifest:
    """Read and append the manifest of one output folder."""

    def __init__(self, output_dir: str):
        self.output_dir = output_dir
        self.path = os.path.join(output_dir, MANIFEST)
        self._handle: TextIO | None = None

    def load(self) -> dict[str, dict]:
        """File name -> its latest record; unreadable lines (a torn last line) are ignored."""
        records: dict[str, dict] = {}
        try:
            with open(self.path, encoding="utf-8") as handle:
                for line in handle:
                    try:
                        record = json.loads(line)
                        records[record["file"]] = record
                    except (ValueError, KeyError, TypeError):
                        continue
        except OSError:
            pass
        return records

    def add(self, path: str, frame: int, identity: Identity) -> None:
        """Record that ``identity`` put ``path`` (frame ``frame``) in place just now."""
        stat = os.stat(path)
        record = {
            "file": os.path.basename(path),
            "frame": frame,
            "job": identity.job_id,
            "blend": identity.blend,
            "blend_hash": identity.blend_hash,
            "settings": identity.settings,
            "size": stat.st_size,
            "mtime_ns": stat.st_mtime_ns,
            "at": round(time.time(), 3),
        }
        if self._handle is None:
            self._handle = open(self.path, "a", encoding="utf-8")  # kept open for the run
        self._handle.write(json.dumps(record) + "\n")
        self._handle.flush()

    def compact(self, records: dict[str, dict] | None = None) -> None:
        """Rewrite the file with one line per frame file when superseded lines make up most of it."""
        records = self.load() if records is None else records
        try:
            with open(self.path, encoding="utf-8") as handle:
                lines = sum(1 for _ in handle)
        except OSError:
            return
        if lines <= 2 * len(records) + 100:
            return
        temporary = f"{self.path}.{os.getpid()}.tmp"
        with open(temporary, "w", encoding="utf-8") as handle:
            handle.writelines(json.dumps(record) + "\n" for record in records.values())
        os.replace(temporary, self.path)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def intact(record: dict, path: str) -> bool:
    """The file is still the one the record describes (same size and modification time)."""
    try:
        stat = os.stat(path)
    except OSError:
        return False
    return stat.st_size == record.get("size") and stat.st_mtime_ns == record.get("mtime_ns")


def origin(record: dict | None, me: Identity) -> str:
    """Where a kept frame came from, in words."""
    if record is None:
        return "an unknown render (not in the folder's manifest)"
    job = f"job {record.get('job')}"
    if record.get("blend") != me.blend:
        return f"{job} (another .blend: {record.get('blend')})"
    if record.get("blend_hash") != me.blend_hash:
        return f"{job} (an earlier version of this .blend)"
    if record.get("settings") != me.settings:
        return f"{job} (other render settings)"
    return f"{job} (same file and settings)"


def classify(
    frames: Iterable[int],
    final_path: Callable[[int], str],
    records: dict[str, dict],
    me: Identity,
    keep_existing: bool,
    check: Callable[[str], str | None],
    redo: set[int] | frozenset[int] = frozenset(),
    own: set[int] | frozenset[int] = frozenset(),
) -> Classified:
    """Split ``frames`` into this job's intact frames (with ``own``), kept frames and frames to render
    (with all of ``redo``)."""
    result = Classified()
    for frame in frames:
        path = final_path(frame)
        record = records.get(os.path.basename(path))
        if frame in redo:
            result.to_render.append(frame)
        elif frame in own:
            result.done_before.append(frame)
        elif record is not None and record.get("job") == me.job_id and intact(record, path):
            result.done_before.append(frame)
        elif keep_existing and os.path.exists(path) and check(path) is None:
            result.kept.append(frame)
            result.kept_from[origin(record, me)] += 1
        else:
            result.to_render.append(frame)
    return result
