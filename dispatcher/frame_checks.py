"""Each finished frame is made durable (fsync) and decoded off the supervisor's loop, so its worker starts
the next frame at once instead of waiting ~20-50 ms per frame for the check (measured: a 960x540 PNG).

A check's result comes back through the supervisor's inbox under ``CHECKS_KEY``; the rename into place
stays in the loop, so two copies of one frame (a backup) never race for the final name.
"""

from __future__ import annotations

import os
import queue
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from .images import check_image

CHECKS_KEY = ("<frame checks>", 0)


@dataclass
class FrameCheck:
    """One copy of a frame a worker handed in: its files ([temporary, final] pairs) and its record."""

    frame: int
    lane: str
    generation: int
    files: list[list[str]]
    record: dict = field(default_factory=dict)
    several: bool = False  # the worker named its files (File Output nodes, stereo)
    problem: str | None = None  # set by the check: why a file is not a valid image


def check_files(check: FrameCheck) -> FrameCheck:
    """Flush each temporary file to the disk and decode it; the first problem is kept."""
    for temporary, final in check.files:
        problem = _flush(temporary) or check_image(temporary)
        if problem:
            name = f"{os.path.basename(final)}: " if len(check.files) > 1 else ""
            check.problem = f"output not valid: {name}{problem}"
            break
    return check


def _flush(path: str) -> str | None:
    try:
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())
    except FileNotFoundError:
        return None  # check_image names it
    except OSError as error:
        return f"cannot read it back: {error.strerror or error}"
    return None


def move_checked(files: list[list[str]]) -> str | None:
    """Rename every checked temporary to its final name; on failure remove them all and say why."""
    for temporary, final in files:
        try:
            os.makedirs(os.path.dirname(final), exist_ok=True)
            os.replace(temporary, final)
        except OSError as error:
            remove_temporaries(files)
            return f"cannot move the frame into place: {error.strerror or error}"
    return None


def remove_temporaries(files: list[list[str]]) -> None:
    for temporary, _final in files:
        try:
            os.remove(temporary)
        except OSError:
            pass


class FrameChecks:
    """Checks in progress. ``background=False`` checks at once, in the caller (tests with a fake clock)."""

    def __init__(self, inbox: queue.Queue, background: bool = True, threads: int = 2) -> None:
        self.inbox = inbox
        self.background = background
        self.threads = threads
        self.pending: dict[int, int] = {}  # frame -> copies being checked
        self._pool: ThreadPoolExecutor | None = None
        self._futures: list = []

    def submit(self, check: FrameCheck) -> FrameCheck | None:
        """Start a check; the finished check at once when not in the background, else None (it arrives
        later as a ``checked`` event in the inbox)."""
        if not self.background:
            return check_files(check)
        self.pending[check.frame] = self.pending.get(check.frame, 0) + 1
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="frame-check")
        self._futures = [future for future in self._futures if not future.done()]
        self._futures.append(self._pool.submit(self._run, check))
        return None

    def _run(self, check: FrameCheck) -> None:
        try:
            check_files(check)
        except Exception as error:  # a check never takes the loop down; the frame is redone
            check.problem = f"output not checked: {error}"
        self.inbox.put((CHECKS_KEY, {"event": "checked", "check": check}))

    def arrived(self, check: FrameCheck) -> None:
        """The loop took a finished check out of the inbox."""
        left = self.pending.get(check.frame, 0) - 1
        if left > 0:
            self.pending[check.frame] = left
        else:
            self.pending.pop(check.frame, None)

    def busy(self) -> bool:
        return bool(self.pending)

    def finish(self) -> list[FrameCheck]:
        """Wait for every check in progress and return those not yet taken from the inbox (shutdown)."""
        wait(self._futures)
        found, others = [], []
        while True:
            try:
                key, message = self.inbox.get_nowait()
            except queue.Empty:
                break
            if key == CHECKS_KEY:
                found.append(message["check"])
            else:
                others.append((key, message))
        for item in others:
            self.inbox.put(item)
        return found

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
