"""One writer per output folder: OS locks that die with their holder (kill -9 included)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest
from farmtest import ROOT, wait_for

from dispatcher.output_lock import Busy, OutputLock, job_lock, job_running, output_busy

HOLDER = textwrap.dedent(
    """
    import sys, time
    from dispatcher.output_lock import OutputLock, job_lock
    lock = OutputLock(sys.argv[1], "holder-job", sys.argv[2])
    lock.acquire()
    held = job_lock(sys.argv[2])
    held.try_acquire()
    print("held", flush=True)
    time.sleep(600)
    """
)


def start_holder(out, job_dir) -> subprocess.Popen:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(out), str(job_dir)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_second_writer_is_refused_naming_the_live_job_and_proceeds_after_kill_9(tmp_path):
    out, job_dir = tmp_path / "out", tmp_path / "job"
    out.mkdir(), job_dir.mkdir()
    holder = start_holder(out, job_dir)
    try:
        assert output_busy(str(out))["job_id"] == "holder-job" and job_running(str(job_dir))
        with pytest.raises(Busy, match=r"being written by job holder-job, pid \d+") as refused:
            OutputLock(str(out), "second", str(tmp_path / "j2")).acquire()
        assert refused.value.owner["pid"] == holder.pid
        assert not job_lock(str(job_dir)).try_acquire()
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    assert output_busy(str(out)) is None and not job_running(str(job_dir))
    second = OutputLock(str(out), "second", str(tmp_path / "j2"))
    assert second.acquire() and second.held
    assert output_busy(str(out))["job_id"] == "second"
    second.release()
    assert output_busy(str(out)) is None and not os.path.exists(out / ".grf-output.owner.json")


def test_queue_waits_for_the_writer_and_a_cancel_ends_the_wait(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    first = OutputLock(str(out), "first", "j1")
    first.acquire()
    seen = []
    waiting = OutputLock(str(out), "second", "j2")
    assert not waiting.acquire(wait=True, on_wait=seen.append, cancelled=lambda: len(seen) >= 2, poll=0.01)
    assert seen[0]["job_id"] == "first" and not waiting.held
    first.release()
    assert waiting.acquire(wait=True) and waiting.held
    waiting.release()


def test_the_same_lock_twice_in_one_process_is_still_one_holder(tmp_path):
    one, two = job_lock(str(tmp_path)), job_lock(str(tmp_path))
    assert one.try_acquire() and one.try_acquire()  # re-taking one's own lock is fine
    assert not two.try_acquire()
    one.release()
    wait_for(two.try_acquire, timeout=5, what="the lock to be free")
    two.release()


def test_temporary_names_are_unique_per_job_and_lane():
    from dispatcher.runner import temp_path_for

    names = {temp_path_for("/out/f_0001.png", lane, job) for job in ("shot-a", "shot-b") for lane in ("cpu0", "gpu1")}
    assert len(names) == 4 and all(os.path.basename(name).startswith(".f_0001.png.grf-") for name in names)
