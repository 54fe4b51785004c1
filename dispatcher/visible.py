"""Which GPUs this process may use: NVML's list narrowed by the environment, as the GPU runtimes read it.

NVML lists every card in the machine and ignores ``CUDA_VISIBLE_DEVICES``; CUDA does not. A scheduler
(Slurm, a shared server's convention) hands a user some cards through that variable, so the farm must
read it the way CUDA does:

* unset: every card; set to ``""``: no card;
* a comma list of indices (``0,2``) or UUIDs (``GPU-8a1...``, a unique prefix is enough; ``MIG-`` ids
  name a slice of a card); CUDA stops at the first entry it cannot read (an unknown index or UUID, a
  repeat, a negative number), so ``0,7,1`` on a 2-card machine means card 0 only.

Indices are NVML's (PCI bus order); they match CUDA's when ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` or the cards
are all alike. ``HIP_VISIBLE_DEVICES`` / ``ROCR_VISIBLE_DEVICES`` and ``ONEAPI_DEVICE_SELECTOR`` choose AMD
and Intel devices, which NVML does not list: lanes without an NVML card keep them as they are.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping

from .devices import DeviceReport, Gpu

PASSED_THROUGH = ("HIP_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES", "ONEAPI_DEVICE_SELECTOR")


def parse_cuda_visible(value: str | None, gpus: list[Gpu]) -> list[Gpu] | None:
    """The cards CUDA would show for this ``CUDA_VISIBLE_DEVICES`` value, in its order; None when unset."""
    if value is None:
        return None
    chosen: list[Gpu] = []
    for entry in value.split(","):
        gpu = _match_entry(entry.strip(), gpus)
        if gpu is None or gpu in chosen:
            break  # CUDA ignores everything from the first unreadable entry on
        chosen.append(gpu)
    return chosen


def _match_entry(entry: str, gpus: list[Gpu]) -> Gpu | None:
    if not entry:
        return None
    if entry.isdigit():
        index = int(entry)
        return next((gpu for gpu in gpus if gpu.index == index), None)
    wanted = entry.lower()
    if wanted.startswith("mig-"):
        return None  # a MIG slice: NVML's card list cannot name it, so it is not a whole card here
    if not wanted.startswith("gpu-"):
        wanted = "gpu-" + wanted
    matches = [gpu for gpu in gpus if gpu.uuid.lower().startswith(wanted)]
    return matches[0] if len(matches) == 1 else None


def apply_visibility(report: DeviceReport, environ: Mapping[str, str] | None = None) -> DeviceReport:
    """A copy of ``report`` with only the cards this environment allows; the others are in ``hidden``.

    Idempotent: a report that was already narrowed is returned as it is.
    """
    if report.hidden is not None:
        return report
    environ = os.environ if environ is None else environ
    value = environ.get("CUDA_VISIBLE_DEVICES")
    allowed = parse_cuda_visible(value, report.gpus)
    if allowed is None:
        return dataclasses.replace(report, gpus=list(report.gpus), hidden=[])
    hidden = [
        {"index": gpu.index, "name": gpu.name, "uuid": gpu.uuid, "reason": f"CUDA_VISIBLE_DEVICES={value!r}"}
        for gpu in report.gpus
        if gpu not in allowed
    ]
    narrowed = dataclasses.replace(report, gpus=allowed, hidden=hidden)
    if report.gpus and not allowed:
        narrowed.reason = f"every GPU is hidden by CUDA_VISIBLE_DEVICES={value!r}"
    return narrowed


def passed_through(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The AMD / Intel selection variables set in this environment (shown by ``devices``)."""
    environ = os.environ if environ is None else environ
    return {name: environ[name] for name in PASSED_THROUGH if name in environ}


def hidden_lines(report: DeviceReport, environ: Mapping[str, str] | None = None) -> list[str]:
    """What ``devices`` prints about the cards this process may not use, and the variables passed on."""
    lines = [f"GPU {card['index']}: {card['name']}  {card['uuid']}  hidden: {card['reason']}" for card in report.hidden]
    lines += [f"{name}={value!r}: passed on unchanged to HIP / oneAPI workers"
              for name, value in passed_through(environ).items()]  # fmt: skip
    return lines
