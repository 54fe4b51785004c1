"""Device discovery: NVIDIA GPUs through NVML, CPU facts through psutil. Never imports bpy."""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class Gpu:
    """One NVIDIA GPU as NVML reports it."""

    index: int
    name: str
    uuid: str
    pci_bus_id: str  # NVML form: "00000000:00:06.0"
    memory_total_mb: int
    memory_free_mb: int
    utilization_pct: int | None = None
    temperature_c: int | None = None
    compute_capability: tuple[int, int] | None = None

    @property
    def memory_used_mb(self) -> int:
        return self.memory_total_mb - self.memory_free_mb

    def to_dict(self) -> dict:
        data = asdict(self)
        data["memory_used_mb"] = self.memory_used_mb
        data["cycles_pci"] = cycles_pci_address(self.pci_bus_id)
        return data


@dataclass
class DeviceReport:
    """What the machine has; `reason` says why `gpus` is empty."""

    gpus: list[Gpu] = field(default_factory=list)
    reason: str | None = None
    driver: str | None = None
    cpu: dict = field(default_factory=dict)
    hidden: list[dict] | None = None  # cards this environment may not use; None: not narrowed yet

    def to_dict(self) -> dict:
        return {
            "gpus": [gpu.to_dict() for gpu in self.gpus],
            "hidden": self.hidden or [],
            "reason": self.reason,
            "driver": self.driver,
            "cpu": self.cpu,
        }


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def detect_gpus() -> DeviceReport:
    """List NVIDIA GPUs; an empty list with the reason when NVML or GPUs are missing."""
    report = DeviceReport(cpu=cpu_info())
    try:
        import pynvml
    except ImportError:
        report.reason = "pynvml is not installed (pip install nvidia-ml-py)"
        return report
    try:
        pynvml.nvmlInit()
    except Exception as error:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...
        report.reason = f"NVML unavailable: {error or type(error).__name__}"
        return report
    try:
        report.driver = _text(pynvml.nvmlSystemGetDriverVersion())
        for index in range(pynvml.nvmlDeviceGetCount()):
            report.gpus.append(_read_gpu(pynvml, index))
        if not report.gpus:
            report.reason = "NVML found no GPU"
    except Exception as error:
        report.reason = f"NVML query failed: {error or type(error).__name__}"
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:
            pass
    return report


def _read_gpu(pynvml, index: int) -> Gpu:
    handle = pynvml.nvmlDeviceGetHandleByIndex(index)
    memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
    try:
        utilization = int(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu)
    except Exception:
        utilization = None
    try:
        temperature = int(pynvml.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU))
    except Exception:
        temperature = None
    try:
        capability = tuple(pynvml.nvmlDeviceGetCudaComputeCapability(handle))
    except Exception:
        capability = None
    return Gpu(
        index=index,
        name=_text(pynvml.nvmlDeviceGetName(handle)),
        uuid=_text(pynvml.nvmlDeviceGetUUID(handle)),
        pci_bus_id=_text(pynvml.nvmlDeviceGetPciInfo(handle).busId),
        memory_total_mb=int(memory.total // 2**20),
        memory_free_mb=int(memory.free // 2**20),
        utilization_pct=utilization,
        temperature_c=temperature,
        compute_capability=capability,
    )


def cpu_info() -> dict:
    """Logical/physical cores, memory and load, from psutil when present."""
    info = {"logical_cores": os.cpu_count() or 1}
    try:
        import psutil
    except ImportError:
        return info
    info["physical_cores"] = psutil.cpu_count(logical=False) or info["logical_cores"]
    memory = psutil.virtual_memory()
    info["memory_total_mb"] = int(memory.total // 2**20)
    info["memory_available_mb"] = int(memory.available // 2**20)
    try:
        info["usable_cores"] = len(os.sched_getaffinity(0))
    except AttributeError:
        info["usable_cores"] = info["logical_cores"]
    return info


_NVML_BUS_ID = re.compile(r"^(?P<domain>[0-9a-fA-F]+):(?P<bus>[0-9a-fA-F]{2}):(?P<device>[0-9a-fA-F]{2})(\.\d)?$")


def cycles_pci_address(nvml_bus_id: str) -> str:
    """NVML "00000000:00:06.0" -> Cycles' "0000:00:06" (lower case, 4-digit domain, no function)."""
    match = _NVML_BUS_ID.match(nvml_bus_id.strip())
    if not match:
        raise ValueError(f"not a PCI bus id: {nvml_bus_id!r}")
    domain = int(match["domain"], 16) & 0xFFFF
    return f"{domain:04x}:{match['bus'].lower()}:{match['device'].lower()}"


def cycles_ids_for_gpu(gpu_pci_bus_id: str, cycles_ids: list[str]) -> list[str]:
    """Cycles device ids (CUDA, OptiX, ...) that sit at this NVML PCI address.

    Cycles ids look like ``CUDA_NVIDIA H200_0000:00:06`` and ``CUDA_NVIDIA H200_0000:00:06_OptiX``.
    """
    address = cycles_pci_address(gpu_pci_bus_id)
    wanted = re.compile(rf"_{re.escape(address)}(_OptiX)?$", re.IGNORECASE)
    return [device_id for device_id in cycles_ids if wanted.search(device_id)]


def best_device_type(report: DeviceReport) -> str:
    """The fastest Cycles backend this machine likely has: OPTIX on NVIDIA (Maxwell+), else CPU."""
    if report.gpus:
        capabilities = [gpu.compute_capability for gpu in report.gpus if gpu.compute_capability]
        if all(major >= 5 for major, _minor in capabilities):
            return "OPTIX"
        return "CUDA"
    return "CPU"


def select_gpus(report: DeviceReport, wanted: list[str] | None) -> list[Gpu]:
    """Pick GPUs by index, UUID or PCI bus id; raise ValueError naming a GPU that is not there."""
    if not wanted:
        return list(report.gpus)
    chosen = []
    for key in wanted:
        key = key.strip()
        match = [
            gpu
            for gpu in report.gpus
            if key == str(gpu.index) or key.lower() == gpu.uuid.lower() or key.lower() == gpu.pci_bus_id.lower()
        ]
        if not match:
            have = ", ".join(f"{gpu.index}:{gpu.name}" for gpu in report.gpus) or f"none ({report.reason})"
            hidden = [gpu for gpu in report.hidden or () if key.lower() in (str(gpu["index"]), gpu["uuid"].lower())]
            if hidden:
                raise ValueError(f"GPU {key!r} is hidden from this process ({hidden[0]['reason']})")
            raise ValueError(f"GPU {key!r} is not on this machine (GPUs: {have})")
        if match[0] not in chosen:
            chosen.append(match[0])
    return chosen
