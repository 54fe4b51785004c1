"""Which GPUs this process may use: NVML's list narrowed by the environment, as the GPU runtimes read it.

NVML lists every card in the machine and ignores ``CUDA_VISIBLE_DEVICES``; CUDA does not. A scheduler
(Slurm, a shared server's convention) hands a user some cards through that variable, so the farm reads
it the way the CUDA driver does (checked value by value on 2x H100, docs/gpu-2026-11-25/):

* unset: every card; ``""``: none;
* a comma list of indices (``0,2``; read like C's ``strtol``: `` 1``, ``+1``, ``01`` and ``1x`` are 1) or of
  UUIDs (``GPU-`` then a unique prefix of the hex id, any case; ``MIG-`` slices are not whole cards);
* the list ends at the first entry CUDA cannot read (an index that is not there, a negative number,
  an empty entry, an unknown or ambiguous UUID) or that switches between indices and UUIDs;
* a card named twice makes CUDA show no card at all.

Indices are NVML's (PCI bus order); they match CUDA's when ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` or the cards
are all alike. ``HIP_VISIBLE_DEVICES`` / ``ROCR_VISIBLE_DEVICES`` and ``ONEAPI_DEVICE_SELECTOR`` choose AMD
and Intel devices, which NVML does not list: lanes without an NVML card keep them as they are.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping

from .devices import DeviceReport, Gpu

PASSED_THROUGH = ("HIP_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES", "ONEAPI_DEVICE_SELECTOR")


def parse_cuda_visible(value: str | None, gpus: list[Gpu]) -> list[Gpu] | None:
    """The cards CUDA would show for this ``CUDA_VISIBLE_DEVICES`` value, in its order; None when unset."""
    if value is None:
        return None
    chosen: list[Gpu] = []
    mode = None
    for entry in value.split(","):
        kind, gpu = _read_entry(entry, gpus)
        if gpu is None or (mode is not None and kind != mode):
            break  # CUDA ignores everything from the first entry it cannot read
        if gpu in chosen:
            return []  # a card named twice: CUDA fails to initialise and shows none
        mode = kind
        chosen.append(gpu)
    return chosen


_INDEX = re.compile(r"\s*\+?(\d+)")


def _read_entry(entry: str, gpus: list[Gpu]) -> tuple[str | None, Gpu | None]:
    if entry.startswith("GPU-"):
        wanted = entry.lower()
        matches = [gpu for gpu in gpus if gpu.uuid.lower().startswith(wanted)] if len(entry) > 4 else []
        return "uuid", matches[0] if len(matches) == 1 else None
    number = _INDEX.match(entry)
    if number is None:
        return None, None
    index = int(number[1])
    return "index", next((gpu for gpu in gpus if gpu.index == index), None)


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
    lines = [f"GPU {card['index']}: {card['name']}  {card['uuid']}  hidden: {card['reason']}"
             for card in report.hidden or []]  # fmt: skip
    lines += [f"{name}={value!r}: passed on unchanged to HIP / oneAPI workers"
              for name, value in passed_through(environ).items()]  # fmt: skip
    return lines
