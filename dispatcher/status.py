"""status.json as types: JobStatus and LaneStatus, the one reader and writer of the file.

The runner and the supervisor build these; the CLI, the job folders (cancel), the report, the add-on's
monitor, panel and operators read them. ``from_json`` tolerates damage: unknown keys are ignored and a
value of the wrong type falls back to the field's default, so a half-written or older file still reads.
Both also read as a mapping of their JSON form (``status["frames"]["done"]``), for callers that indexed
the old dicts.
"""

from __future__ import annotations

import json
import os
import types
from collections.abc import Iterator, Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

from .spec import write_json_atomic

STATUS_VERSION = 1
TERMINAL_STATES = ("done", "failed", "cancelled")
ACTIVE_STATES = ("starting", "queued", "running")  # queued: waiting for its GPUs or its output folder
T = TypeVar("T")


class JsonView(Mapping[str, Any]):
    """Read-only mapping view of a record's JSON form, for callers that indexed the old dicts."""

    def to_json(self) -> dict[str, Any]:
        raise NotImplementedError

    def __getitem__(self, key: str) -> Any:
        return self.to_json()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.to_json())

    def __len__(self) -> int:
        return len(self.to_json())


@dataclass(eq=True)
class LaneStatus(JsonView):
    """One lane as status.json shows it."""

    name: str = "?"
    state: str = "starting"
    device: str = ""
    device_type: str | None = None
    gpus: list[str] = field(default_factory=list)
    devices_used: list = field(default_factory=list)
    pid: int | None = None
    frame: int | None = None
    frame_started_at: float | None = None  # wall time the current frame was sent to the worker
    sample: int | None = None
    samples: int | None = None
    frames_done: int = 0
    seconds_per_frame: float | None = None
    failures: int = 0
    restarts: int = 0
    blocklisted: bool = False
    last_error: str | None = None
    note: str | None = None
    phase: str | None = None
    visible_devices: str | None = None
    node: str | None = None

    @classmethod
    def from_json(cls, data: object) -> LaneStatus:
        return _from_json(cls, data)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(eq=True)
class JobStatus(JsonView):
    """A job's status: its state and phase, frame counts, lanes and timings."""

    state: str = "starting"
    phase: str | None = None
    job_id: str | None = None
    job_dir: str | None = None
    blend: str | None = None
    output_dir: str | None = None
    pid: int | None = None
    started_at: float | str | None = None  # epoch seconds; an ISO-8601 text (other tools) is kept as is
    updated_at: float | None = None
    elapsed: float = 0.0
    eta_seconds: float | None = None
    device_type: str | None = None
    layout: str | None = None
    autotune: dict | None = None
    frames: dict[str, int] = field(default_factory=dict)
    kept_from: dict[str, int] = field(default_factory=dict)  # kept existing frames by origin ("job X (...)")
    failed_frames: dict[str, str] = field(default_factory=dict)
    lanes: list[LaneStatus] = field(default_factory=list)
    message: str | None = None
    missing_files: list[str] | None = None  # what the pre-flight found missing when it stopped the job
    video: str | None = None
    finished_at: float | str | None = None  # written only once the job ended; epoch seconds or ISO-8601
    error: str | None = None  # written only when the job failed before it ran
    version: int = STATUS_VERSION

    @classmethod
    def from_json(cls, data: object) -> JobStatus:
        status = _from_json(cls, data)
        raw = data.get("lanes") if isinstance(data, dict) else None
        status.lanes = [LaneStatus.from_json(lane) for lane in raw or [] if isinstance(lane, dict)]
        return status

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("finished_at", "error"):
            if data[key] is None:
                del data[key]
        return data

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL_STATES


def read_status(job_dir: str) -> JobStatus | None:
    """The job's last status, or None when it has none yet (or the file is not JSON)."""
    try:
        with open(os.path.join(job_dir, "status.json"), encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return None
    return JobStatus.from_json(data) if isinstance(data, dict) else None


def write_status(job_dir: str, status: JobStatus) -> None:
    """Replace status.json atomically (readers never see half a file)."""
    write_json_atomic(os.path.join(job_dir, "status.json"), status.to_json())


def _from_json(cls: type[T], data: object) -> T:
    """An instance of the dataclass ``cls`` from a dict: unknown keys ignored, wrong types defaulted."""
    data = data if isinstance(data, dict) else {}
    hints = get_type_hints(cls)
    values = {}
    for item in fields(cls):  # type: ignore[arg-type]
        if item.name in data and _fits(data[item.name], hints[item.name]):
            values[item.name] = data[item.name]
        elif item.default is MISSING and item.default_factory is not MISSING:
            values[item.name] = item.default_factory()
    return cls(**values)


def _fits(value: object, hint: Any) -> bool:
    """Whether a JSON value fits a field's type (containers are checked one level deep)."""
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        return any(_fits(value, option) for option in get_args(hint))
    if hint is type(None):
        return value is None
    if hint is Any:
        return True
    if origin is not None:
        hint = origin
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)
