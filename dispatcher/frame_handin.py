"""A frame a worker hands in: the worker goes on at once; the frame is checked on a thread (frame_checks.py),
then moved into place, or redone while the lane that made it restarts. Part of the Supervisor."""

from __future__ import annotations

import queue
from collections.abc import Callable
from typing import TYPE_CHECKING

from .frame_checks import FrameCheck, FrameChecks, move_checked, remove_temporaries
from .frame_queue import FrameQueue
from .lane_state import READY, RENDERING, STOPPED, LaneRun


class FrameHandIn:
    """The Supervisor's handling of ``done`` and ``checked`` events."""

    runs: dict[str, LaneRun]
    frames: FrameQueue
    checks: FrameChecks
    inbox: queue.Queue
    paths: Callable[[int, str], tuple[str, str]]
    clock: Callable[[], float]
    wall_clock: Callable[[], float]
    on_frame: Callable[[dict], None]
    output_problem: Callable[[], str | None] | None
    stopped_for: str | None
    stopping: bool
    changed: bool

    if TYPE_CHECKING:

        def _dispatch(self) -> None: ...
        def _kill(self, run: LaneRun) -> None: ...
        def _lane_failed(self, run: LaneRun, error: str, counts: bool = True) -> None: ...
        def _wake_idle_lanes(self) -> bool: ...

    def _on_done(self, run: LaneRun, message: dict) -> None:
        """The worker handed in its frame: it takes the next one at once while the frame is checked."""
        frame = run.frame
        if run.state != RENDERING or frame is None or message.get("frame") != frame:
            return
        temp_path, final_path = self.paths(frame, run.lane.name)
        files = message.get("files") or [[temp_path, final_path]]  # every file the frame made
        now = self.clock()
        run.render_seconds.append(float(message.get("seconds") or 0.0))
        run.wall_seconds.append(now - run.frame_sent_at)
        record = {"frame": frame, "lane": run.lane.name, "start": round(run.frame_sent_wall, 4),
                  "end": round(run.frame_sent_wall + (now - run.frame_sent_at), 4),
                  "render_seconds": message.get("seconds"), "worker_start": message.get("received_at"),
                  "worker_end": message.get("finished_at"), "status": "done",
                  "attempt": self.frames.attempts.get(frame, 1), "backup": run.backup, "path": final_path}  # fmt: skip
        check = FrameCheck(frame, run.lane.name, run.generation, files, record, bool(message.get("files")))
        run.temp_path = None
        run.move(READY)
        run.frame, run.sample, run.samples, run.backup = None, None, None, False
        checked = self.checks.submit(check)
        if checked is not None:
            self._on_checked(checked)
        self._dispatch()

    def _on_checked(self, check: FrameCheck) -> None:
        """A handed-in frame was checked: move it into place, or redo it and restart its lane."""
        self.checks.arrived(check)
        run, frame = self.runs[check.lane], check.frame
        if frame in self.frames.done or frame in self.frames.failed:  # the other copy won, or the job gave up
            remove_temporaries(check.files)
            return
        problem = check.problem
        if problem:
            remove_temporaries(check.files)
        else:
            problem = move_checked(check.files)
        if problem:
            return self._checked_frame_failed(run, check, problem)
        run.frames_done += 1
        run.consecutive_failures = 0
        run.rendered_once = True
        handed_in = check.record["end"]  # the worker's part ended then (the lane may have exited since)
        run.times.setdefault("first_frame_done", handed_in)
        run.times["last_frame_done"] = max(run.times.get("last_frame_done", handed_in), handed_in)
        self.frames.complete(frame)
        for other in self.runs.values():  # the losing copy of a backed-up frame
            if other.state == RENDERING and other.frame == frame:
                self._kill(other)
                other.frame, other.backup = None, False
                other.move(STOPPED)
                other.idle_stopped = True
        files = [final for _temporary, final in check.files] if check.several else None
        self.on_frame({**check.record, "files": files})
        self.changed = True

    def _checked_frame_failed(self, run: LaneRun, check: FrameCheck, error: str) -> None:
        """A bad or unmovable frame: the disk's fault stops the job; otherwise the frame is redone and
        the lane that made it restarts clean (a bad image can mean a poisoned GPU context)."""
        problem = self.output_problem() if self.output_problem else None
        if problem:
            self.frames.release(check.frame)
            run.last_error = self.stopped_for = problem
            return
        final = self.frames.fail(check.frame, run.lane.name, error)
        self.on_frame({**{key: check.record[key] for key in ("frame", "lane", "start", "attempt")},
                       "end": round(self.wall_clock(), 4), "status": "failed" if final else "retry", "error": error})
        if run.generation == check.generation and run.state in (READY, RENDERING):  # not failed already
            if run.frame is not None:  # the frame it started since is not to blame
                self.frames.release(run.frame)
                run.frame = None
            self._lane_failed(run, error)
        else:
            run.last_error = error
        if not final and not self.stopping:
            self._wake_idle_lanes()  # they stepped aside for this lane's frame, which is to be redone
