"""Disk trouble is the job's, not a lane's: when a frame fails, is the output folder itself the cause?

A full disk or a folder that turned read-only (or vanished, or became a file) fails every lane alike;
blaming lanes would blocklist healthy cards and mark good frames failed. The supervisor asks
``output_problem`` whenever a frame fails; a problem stops the job with one message, the frame goes
back to the queue unblamed, and ``resume`` continues once the disk is fixed.
"""

from __future__ import annotations

import os
import shutil

MIN_FREE_BYTES = 64 * 2**20  # refused at the start below this
RUNNING_MIN_FREE_BYTES = MIN_FREE_BYTES // 4  # a running job stops below this


def output_problem(directory: str, min_free: int = RUNNING_MIN_FREE_BYTES) -> str | None:
    """One line describing why frames cannot be written to ``directory``, or None when they can."""
    probe = os.path.join(directory, f".grf-write-test-{os.getpid()}")
    try:
        with open(probe, "wb") as handle:
            handle.write(b"ok")
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as error:
        return f"output folder {directory} is not writable: {error.strerror or error}"
    finally:
        try:
            os.remove(probe)
        except OSError:
            pass
    try:
        free = shutil.disk_usage(directory).free
    except OSError as error:
        return f"output folder {directory} cannot be read: {error.strerror or error}"
    if free < min_free:
        return f"output disk is full ({directory}: {free // 2**20} MiB free)"
    return None


def first_problem(folders: list[str]) -> str | None:
    """The first of ``folders`` (the output folder, then File Output nodes' folders) frames cannot go to."""
    for folder in folders:
        problem = output_problem(folder)
        if problem:
            return problem
    return None


def stop_check_due(now: float, last: float, every: float = 2.0) -> tuple[bool, float]:
    """Whether the free space is due a look (every ``every`` seconds), and the new time of the last look."""
    return (True, now) if now - last >= every else (False, last)


def disk_stop(stopped_for: str | None, output_dir: str | None) -> str | None:
    """Why the disk stops a running job: a frame could not be written (``stopped_for``), or ``output_dir``
    (None: not checked this time) is nearly full."""
    from .preflight import disk_nearly_full

    if stopped_for:
        return f"{stopped_for}; finished frames are kept, fix it and resume"
    if output_dir is not None and disk_nearly_full(output_dir):
        return f"output disk is full ({output_dir}); finished frames are kept"
    return None
