"""One writer per output folder, one runner per job: OS file locks that die with their holder.

The locks are ``filelock`` locks (``flock`` on Unix, ``LockFileEx`` on Windows): the kernel drops them
when the holding process ends, ``kill -9`` included, so no stale pid file can block a folder. Beside
the folder lock a small owner file names the job holding it, for the refusal message and the queue.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from filelock import FileLock, Timeout

from .spec import SpecError, write_json_atomic

OUTPUT_LOCK = ".grf-output.lock"
OUTPUT_OWNER = ".grf-output.owner.json"
JOB_LOCK = "run.lock"


class Busy(SpecError):
    """The folder (or job) is held by a live process; ``owner`` says which job, when known."""

    def __init__(self, message: str, owner: dict | None = None):
        super().__init__(message)
        self.owner = owner or {}


class HeldLock:
    """A non-reentrant file lock held by this process until ``release`` (or until the process ends)."""

    def __init__(self, path: str):
        self.path = path
        self._lock = FileLock(path, thread_local=False)

    def try_acquire(self, timeout: float = 0.0) -> bool:
        if self._lock.is_locked:
            return True
        try:
            self._lock.acquire(timeout=timeout, poll_interval=0.05)
        except Timeout:
            return False
        return True

    def release(self) -> None:
        if self._lock.is_locked:
            self._lock.release(force=True)

    @property
    def held(self) -> bool:
        return self._lock.is_locked


def describe_owner(owner: dict) -> str:
    job = owner.get("job_id") or "another job"
    pid = f", pid {owner['pid']}" if owner.get("pid") else ""
    return f"job {job}{pid}"


class OutputLock:
    """The write lock of one output folder, named after the job that holds it."""

    def __init__(self, output_dir: str, job_id: str, job_dir: str):
        self.output_dir = output_dir
        self.job_id, self.job_dir = job_id, job_dir
        self._lock = HeldLock(os.path.join(output_dir, OUTPUT_LOCK))

    def owner(self) -> dict:
        """Who holds the folder, as the holder wrote it (empty when unknown)."""
        try:
            with open(os.path.join(self.output_dir, OUTPUT_OWNER), encoding="utf-8") as handle:
                return json.load(handle)
        except (OSError, ValueError):
            return {}

    def acquire(
        self,
        wait: bool = False,
        on_wait: Callable[[dict], None] | None = None,
        cancelled: Callable[[], bool] = lambda: False,
        poll: float = 0.5,
    ) -> bool:
        """Take the folder; raise Busy naming the live writer, or (``wait``) wait for it. False: cancelled."""
        while not self._lock.try_acquire(timeout=0.2):
            owner = self.owner()
            if not wait:
                raise Busy(
                    f"output folder {self.output_dir} is being written by {describe_owner(owner)}; "
                    "wait for it, cancel it, or add --queue to start when it is done",
                    owner,
                )
            if on_wait:
                on_wait(owner)
            if cancelled():
                return False
            time.sleep(poll)
        write_json_atomic(
            os.path.join(self.output_dir, OUTPUT_OWNER),
            {"job_id": self.job_id, "job_dir": self.job_dir, "pid": os.getpid(), "since": time.time()},
        )
        return True

    def release(self) -> None:
        if self._lock.held:
            try:
                os.remove(os.path.join(self.output_dir, OUTPUT_OWNER))
            except OSError:
                pass
        self._lock.release()

    @property
    def held(self) -> bool:
        return self._lock.held


def output_busy(output_dir: str) -> dict | None:
    """The live writer of ``output_dir`` (its owner record), or None when the folder is free."""
    if not os.path.exists(os.path.join(output_dir, OUTPUT_LOCK)):
        return None
    probe = OutputLock(output_dir, "", "")
    if probe._lock.try_acquire():
        probe._lock.release()
        return None
    return probe.owner() or {"job_id": None}


def job_lock(job_dir: str) -> HeldLock:
    """The lock a process holds while it runs this job: a second runner of the same job is refused."""
    return HeldLock(os.path.join(job_dir, JOB_LOCK))


def job_running(job_dir: str) -> bool:
    """True while some live process holds the job's run lock."""
    if not os.path.exists(os.path.join(job_dir, JOB_LOCK)):
        return False
    probe = job_lock(job_dir)
    if probe.try_acquire():
        probe.release()
        return False
    return True


@contextmanager
def running_alone(job_dir: str, wait: float = 2.0) -> Iterator[None]:
    """Hold the job's run lock while the block runs; another live runner of the job: SpecError, nothing touched."""
    lock = job_lock(job_dir)
    if not lock.try_acquire(timeout=wait):
        raise SpecError(f"job {os.path.basename(job_dir)} is already running")
    try:
        yield
    finally:
        lock.release()
