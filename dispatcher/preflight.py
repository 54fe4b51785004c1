"""Checks before any worker starts (bad input is refused with one clear line), and temporary frame files."""

from __future__ import annotations

import glob
import os
import shutil

from .devices import DeviceReport, best_device_type, detect_gpus
from .process import default_program
from .spec import JobSpec, SpecError

TEMP_MARK = ".grf-"
MIN_FREE_BYTES = 64 * 2**20
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
ZSTD_SEEKABLE_FOOTER = b"\xb1\xea\x92\x8f"


def check_blend(path: str) -> None:
    """Refuse a missing, non-.blend or visibly truncated file before any worker starts."""
    if not os.path.exists(path):
        raise SpecError(f"file not found: {path}")
    if os.path.isdir(path):
        raise SpecError(f"{path} is a folder, not a .blend file")
    try:
        with open(path, "rb") as handle:
            head = handle.read(12)
            handle.seek(max(0, os.path.getsize(path) - 64))
            tail = handle.read()
    except OSError as error:
        raise SpecError(f"cannot read {path}: {error.strerror}") from None
    if head.startswith(b"BLENDER"):
        if b"ENDB" not in tail:
            raise SpecError(f"{path} is a truncated .blend file (no end block)")
    elif head.startswith(ZSTD_MAGIC):
        if not tail.endswith(ZSTD_SEEKABLE_FOOTER):
            raise SpecError(f"{path} is a truncated .blend file (compressed data cut short)")
    elif not head.startswith(b"\x1f\x8b"):  # gzip, as written by Blender before 3.0
        raise SpecError(f"{path} is not a .blend file")


def check_output_dir(directory: str) -> None:
    """Create the output folder; refuse one that cannot be written or has no room."""
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as error:
        raise SpecError(f"cannot create output folder {directory}: {error.strerror}") from None
    probe = os.path.join(directory, f".grf-write-test-{os.getpid()}")
    try:
        with open(probe, "wb") as handle:
            handle.write(b"ok")
        os.remove(probe)
    except OSError as error:
        raise SpecError(f"output folder {directory} is not writable: {error.strerror}") from None
    if shutil.disk_usage(directory).free < MIN_FREE_BYTES:
        raise SpecError(f"output folder {directory} is on a full disk (less than 64 MiB free)")


def preflight(spec: JobSpec, report: DeviceReport | None = None) -> tuple[str, DeviceReport, str]:
    """Everything that can be refused before work starts: (device type, devices, worker program)."""
    spec.validate()
    check_blend(spec.blend)
    check_output_dir(spec.output_dir)
    report = report or detect_gpus()
    device_type = spec.device_type or best_device_type(report)
    program = spec.blender or default_program()
    if not program:
        raise SpecError("no Blender found: pass --blender PATH (a Blender binary or a Python with bpy)")
    if not os.path.exists(program) and not shutil.which(program):
        raise SpecError(f"worker program not found: {program}")
    return device_type, report, program


def temp_path_for(final_path: str, lane: str, job_id: str = "") -> str:
    """A worker's temporary file beside the frame, unique per job and lane."""
    directory, name = os.path.split(final_path)
    owner = f"{job_id}-{lane}" if job_id else lane
    return os.path.join(directory, f".{name}{TEMP_MARK}{owner}.part")


def clean_stale_temps(directory: str) -> int:
    removed = 0
    for path in glob.glob(os.path.join(glob.escape(directory), f".*{TEMP_MARK}*.part")):
        try:
            os.remove(path)
            removed += 1
        except OSError:
            pass
    return removed


def disk_nearly_full(directory: str) -> bool:
    """Less than a quarter of the start-up minimum left: the job must stop before frames get cut short."""
    try:
        return shutil.disk_usage(directory).free < MIN_FREE_BYTES // 4
    except OSError:
        return False
