"""What every benchmark approach shares: the run's settings, one approach's result, lane names and pinning."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field

from .. import report

PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

BLENDER_APPROACHES = ("combined", "combined-pd", "static-chunks", "fresh-per-frame", "blender-1gpu")
PRODUCT_APPROACHES = ("per-card", "per-card-m", "product-combined", "auto", "single", "per-card-threads")
ALL_APPROACHES = BLENDER_APPROACHES + PRODUCT_APPROACHES
# run when --approaches is not given; blender-1gpu and per-card-threads are asked for by name
DEFAULT_APPROACHES = tuple(name for name in ALL_APPROACHES if name not in ("blender-1gpu", "per-card-threads"))


@dataclass
class Settings:
    """One benchmark run: the machine's lanes and the scene's size."""

    device: str  # CPU, OPTIX, CUDA
    lanes: int  # N: GPUs, or CPU lanes standing in for them
    threads: int  # threads per CPU lane (0 on GPUs)
    total_threads: int
    frames: int
    resolution: str
    samples: int
    triangles: int
    workers_per_gpu: int
    program: str
    out: str
    gpu_uuids: list[str] = field(default_factory=list)
    gpu_names: list[str] = field(default_factory=list)
    timeout: float = 3600.0
    keep_frames: bool = False
    label: str = ""
    combined_frames: int = 0  # Blender combined (defaults) renders only this many frames; 0: all

    @property
    def is_cpu(self) -> bool:
        return self.device == "CPU"


@dataclass
class Run:
    """What one approach did: per-frame records in frames.jsonl form, and the wall time."""

    approach: str
    variant: str
    title: str
    started: float
    finished: float
    lanes: list[str]
    records: list[dict]
    frames: int
    ok: bool = True
    error: str = ""
    note: str = ""
    command: list[str] = field(default_factory=list)
    extra: dict = field(default_factory=dict)

    @property
    def wall(self) -> float:
        return max(0.0, self.finished - self.started)

    def job(self) -> report.Job:
        return report.Job(
            title=self.title,
            records=self.records,
            started=self.started,
            finished=self.finished,
            lanes=self.lanes,
            state="done" if self.ok else "failed",
            total_frames=self.frames,
        )

    def save(self, folder: str) -> None:
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, "frames.jsonl"), "w", encoding="utf-8") as handle:
            for record in self.records:
                handle.write(json.dumps(record) + "\n")
        data = asdict(self)
        data.pop("records")
        data["wall"] = self.wall
        with open(os.path.join(folder, "result.json"), "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=1)

    @classmethod
    def load(cls, folder: str) -> Run:
        with open(os.path.join(folder, "result.json"), encoding="utf-8") as handle:
            data = json.load(handle)
        data.pop("wall", None)
        data["records"] = report.read_records(os.path.join(folder, "frames.jsonl"))
        return cls(**data)


# -- programs ----------------------------------------------------------------------------------------------




def lane_env(settings: Settings, gpu_indices: list[int] | None) -> dict[str, str]:
    """Environment that pins a process: the GPUs it may see (None: every bench GPU), or no GPU on CPU."""
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    if settings.is_cpu:
        env["CUDA_VISIBLE_DEVICES"] = ""
        return env
    uuids = settings.gpu_uuids if gpu_indices is None else [settings.gpu_uuids[index] for index in gpu_indices]
    env["CUDA_VISIBLE_DEVICES"] = ",".join(uuids)
    env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
    return env


def lane_names(settings: Settings, count: int | None = None) -> list[str]:
    prefix = "cpu" if settings.is_cpu else "gpu"
    return [f"{prefix}{index}" for index in range(count or settings.lanes)]


def drop_frames(settings: Settings, out: str) -> None:
    if not settings.keep_frames:
        shutil.rmtree(out, ignore_errors=True)
