"""How a lane's worker is started: its command-line flags and its environment. Never imports bpy."""

from __future__ import annotations

import os

from . import jobs, kernels
from .lanes import Lane
from .spec import JobSpec


def worker_args(spec: JobSpec, lane: Lane) -> list[str]:
    """worker.py's flags for one lane of a job."""
    args = [
        "--lane", lane.name,
        "--device-type", lane.device_type,
        "--gpu-pci", ",".join(lane.pci_addresses),
        "--threads", str(lane.threads),
        "--persistent-data", "1" if spec.persistent_data else "0",
    ]  # fmt: skip
    if spec.file_format:
        args += ["--file-format", spec.file_format]
    if spec.samples:
        args += ["--samples", str(spec.samples)]
    if spec.resolution:
        args += ["--resolution", "x".join(str(value) for value in spec.resolution)]
    return args


def worker_env(lane: Lane) -> dict[str, str]:
    """The worker's environment: the lane's pinning, one shared kernel cache, the user's PYTHONPATH."""
    env = dict(os.environ)
    if jobs.ORIGINAL_PYTHONPATH in env:  # undo what a detached launch added for the dispatcher itself
        original = env.pop(jobs.ORIGINAL_PYTHONPATH)
        if original:
            env["PYTHONPATH"] = original
        else:
            env.pop("PYTHONPATH", None)
    env.update(lane.env)
    cache = kernels.cuda_cache_dir(env)
    os.makedirs(cache, exist_ok=True)
    env.setdefault("CUDA_CACHE_PATH", cache)  # one kernel cache shared by every worker
    env.setdefault("CUDA_CACHE_MAXSIZE", str(4 * 2**30))
    env["PYTHONUNBUFFERED"] = "1"
    return env
