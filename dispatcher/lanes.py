"""Lane planning: which worker processes to start, on which devices, with which environment."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from .devices import DeviceReport, Gpu, cycles_pci_address, select_gpus
from .spec import GPU_DEVICE_TYPES, JobSpec, SpecError
from .visible import apply_visibility

T = TypeVar("T")


@dataclass
class Lane:
    """One worker process slot: its devices, its pinning environment and its thread count."""

    name: str
    device_type: str  # OPTIX, CUDA, HIP, ONEAPI, METAL or CPU
    gpus: list[Gpu] = field(default_factory=list)
    threads: int = 0
    env: dict[str, str] = field(default_factory=dict)

    @property
    def is_gpu(self) -> bool:
        return self.device_type != "CPU"

    @property
    def pci_addresses(self) -> list[str]:
        return [cycles_pci_address(gpu.pci_bus_id) for gpu in self.gpus]

    def describe(self) -> str:
        if not self.gpus:
            return f"CPU ({self.threads} threads)" if self.threads else "CPU"
        names = " + ".join(f"{gpu.index}:{gpu.name}" for gpu in self.gpus)
        return f"{self.device_type} {names}"

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "device_type": self.device_type,
            "gpus": [gpu.uuid for gpu in self.gpus],
            "threads": self.threads,
            "device": self.describe(),
        }


def pinning_env(device_type: str, gpus: list[Gpu]) -> dict[str, str]:
    """Environment that limits a worker to its GPUs; it must be set before the process starts."""
    if device_type in ("OPTIX", "CUDA"):
        return {"CUDA_VISIBLE_DEVICES": ",".join(gpu.uuid for gpu in gpus), "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
    if device_type in ("HIP", "ONEAPI") and not gpus:
        return {}  # a lane over whatever the runtime finds: the user's own HIP/oneAPI selection stays
    if device_type == "HIP":
        indices = ",".join(str(gpu.index) for gpu in gpus)
        return {"HIP_VISIBLE_DEVICES": indices, "ROCR_VISIBLE_DEVICES": indices}
    if device_type == "ONEAPI":
        return {"ONEAPI_DEVICE_SELECTOR": "level_zero:" + ",".join(str(gpu.index) for gpu in gpus)}
    if device_type == "CPU":
        # A CPU lane must not grab a GPU by accident (and cannot hit the CPU-fallback trap).
        return {"CUDA_VISIBLE_DEVICES": "", "HIP_VISIBLE_DEVICES": ""}
    return {}


def plan_lanes(spec: JobSpec, report: DeviceReport, device_type: str, usable_cores: int | None = None) -> list[Lane]:
    """Lanes for the spec's layout on this machine; raises SpecError when the request cannot be met."""
    cores = usable_cores or report.cpu.get("usable_cores") or os.cpu_count() or 1
    lanes: list[Lane] = []
    if device_type in GPU_DEVICE_TYPES:
        report = apply_visibility(report)  # only the cards CUDA_VISIBLE_DEVICES allows
        if not report.gpus and device_type in ("OPTIX", "CUDA"):
            raise SpecError(f"{device_type} was asked for but this machine has no NVIDIA GPU ({report.reason})")
        try:
            gpus = select_gpus(report, spec.gpus)
        except ValueError as error:
            raise SpecError(str(error)) from None
        if not gpus and device_type not in ("OPTIX", "CUDA"):
            # HIP/oneAPI/Metal cards are not listed by NVML: one lane over whatever Cycles finds.
            lanes.append(Lane("gpu0", device_type))
        lanes.extend(_gpu_lanes(spec, device_type, gpus))
        if spec.cpu_lane:
            lanes.append(Lane("cpu0", "CPU"))
    else:
        if spec.gpus:
            raise SpecError("GPUs were chosen but the device type is CPU")
        count = spec.cpu_lanes or default_cpu_lanes(cores)
        lanes.extend(Lane(f"cpu{index}", "CPU") for index in range(count))
    share_threads(lanes, spec.threads, cores)
    for lane in lanes:
        lane.env = pinning_env(lane.device_type, lane.gpus)
    return lanes


def _gpu_lanes(spec: JobSpec, device_type: str, gpus: list[Gpu]) -> list[Lane]:
    if not gpus:
        return []
    lanes = []
    for group in group_gpus(gpus, spec.layout, spec.gpus_per_worker):
        override = _override(spec, group[0]) if len(group) == 1 else {}
        lane_type = (override.get("device_type") or device_type).upper()
        copies = int(override.get("workers") or spec.workers_per_gpu)
        base = "gpu" + "+".join(str(gpu.index) for gpu in group)
        for copy in range(copies):
            name = base if copies == 1 else f"{base}.{copy}"
            lanes.append(Lane(name, lane_type, list(group)))
    return lanes


def _override(spec: JobSpec, gpu: Gpu) -> dict:
    """A card's own settings (device type, workers), keyed by UUID or index."""
    return spec.per_gpu.get(gpu.uuid) or spec.per_gpu.get(str(gpu.index)) or {}


def default_cpu_lanes(cores: int) -> int:
    """CPU lanes when none were asked for: one per 4 cores on 8 or more cores (at most 4), else one."""
    return max(1, min(4, cores // 4)) if cores >= 8 else 1


def group_gpus(gpus: list[T], layout: str, size: int) -> list[list[T]]:
    """The GPUs each worker gets: all in one (combined), ``size`` at a time (groups), else one each."""
    if layout == "combined":
        return [list(gpus)]
    if layout == "groups":
        return [list(gpus[start : start + size]) for start in range(0, len(gpus), size)]
    return [[gpu] for gpu in gpus]


def share_threads(lanes: Sequence[Lane], threads: int | None, cores: int) -> None:
    """Give each lane a fixed thread count so lanes do not fight over cores."""
    if not lanes:
        return
    if threads:
        for lane in lanes:
            lane.threads = threads
        return
    cpu_lanes = [lane for lane in lanes if not lane.is_gpu]
    gpu_lanes = [lane for lane in lanes if lane.is_gpu]
    # GPU lanes need a few cores each for scene sync and BVH builds; CPU lanes get the rest.
    gpu_share = max(1, min(4, cores // max(1, len(lanes)))) if cpu_lanes else max(1, cores // max(1, len(gpu_lanes)))
    for lane in gpu_lanes:
        lane.threads = gpu_share
    if cpu_lanes:
        left = max(len(cpu_lanes), cores - gpu_share * len(gpu_lanes))
        for lane in cpu_lanes:
            lane.threads = max(1, left // len(cpu_lanes))
