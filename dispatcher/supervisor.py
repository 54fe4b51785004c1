"""Lane supervision: an explicit state machine per worker (lane_state.py), driven by events and a clock.

Every state change goes through LaneRun.move, which refuses a transition from a state it does not allow.
The supervisor owns each worker's life: start, restart after backoff, and shutdown (quit, wait, kill, reap).
The clock and the process factory are injected, so tests drive it with fakes.
"""

from __future__ import annotations

import os
import queue
import time
from collections.abc import Callable
from dataclasses import dataclass

from . import endgame
from .frame_checks import CHECKS_KEY, FrameChecks
from .frame_handin import FrameHandIn
from .frame_queue import FrameQueue
from .hang import silence_limit
from .lane_state import BACKOFF, FAILED, LIVE_STATES, READY, RENDERING, STARTING, STOPPED, LaneRun, LaneState, job_phase
from .lanes import Lane
from .process import WorkerHandle

__all__ = ["BACKOFF", "FAILED", "LIVE_STATES", "READY", "RENDERING", "STARTING", "STOPPED", "LaneRun", "LaneState",
           "Supervisor", "SupervisorConfig"]  # fmt: skip


@dataclass
class SupervisorConfig:
    hang_timeout: float = 600.0
    first_frame_timeout: float = 3600.0
    max_lane_failures: int = 3
    backoff_base: float = 1.0
    backoff_max: float = 30.0
    backups: bool = True  # second copies of a much slower lane's last frames (off while compiling kernels)
    background_checks: bool = True  # decode handed-in frames on a thread while the worker goes on


class Supervisor(FrameHandIn):
    """Runs lanes against a frame queue; `step()` advances everything one tick."""

    def __init__(
        self,
        lanes: list[Lane],
        frames: FrameQueue,
        *,
        start_worker: Callable[[Lane, tuple, queue.Queue], WorkerHandle],
        paths: Callable[[int, str], tuple[str, str]],
        config: SupervisorConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        on_scene: Callable[[dict], None] | None = None,
        on_frame: Callable[[dict], None] | None = None,
        output_problem: Callable[[], str | None] | None = None,
    ):
        self.runs = {lane.name: LaneRun(lane) for lane in lanes}
        self.frames = frames
        self.start_worker = start_worker
        self.paths = paths  # (frame, lane name) -> (temporary path, final path)
        self.config = config or SupervisorConfig()
        self.clock = clock
        self.wall_clock = wall_clock
        self.on_scene = on_scene
        self.on_frame = on_frame or (lambda record: None)
        self.inbox: queue.Queue = queue.Queue()
        self.scene: dict | None = None
        self.changed = True
        self.fatal_errors: list[str] = []
        self.output_problem = output_problem  # asked when a frame fails: is the disk, not the lane, at fault?
        self.stopped_for: str | None = None  # set when disk trouble stops the job
        self.checks = FrameChecks(self.inbox, background=self.config.background_checks)
        self.stopping = False  # shutdown: no lane starts again

    def start(self) -> None:
        for run in self.runs.values():
            self._launch(run)

    def _launch(self, run: LaneRun) -> None:
        run.generation += 1
        run.move(STARTING)
        run.frame, run.sample, run.samples = None, None, None
        run.last_activity = self.clock()
        run.times.setdefault("spawned", self.wall_clock())
        run.handle = self.start_worker(run.lane, (run.lane.name, run.generation), self.inbox)
        run.pid = run.handle.pid
        self.changed = True

    def live_runs(self) -> list[LaneRun]:
        return [run for run in self.runs.values() if run.live]

    @property
    def finished(self) -> bool:
        """Every planned frame is done or failed, or no lane is left to render."""
        return (self.frames.finished or not self.live_runs()) and not self.checks.busy()

    def step(self, timeout: float = 0.1) -> None:
        """Handle whatever events arrived (waiting up to ``timeout``), then timers and dispatch."""
        try:
            key, message = self.inbox.get(timeout=timeout)
            self.handle(key, message)
            while True:
                key, message = self.inbox.get_nowait()
                self.handle(key, message)
        except queue.Empty:
            pass
        self.tick()

    def tick(self) -> None:
        now = self.clock()
        for run in self.runs.values():
            if run.state == BACKOFF and now >= run.backoff_until:
                self._launch(run)
            elif run.state in (STARTING, RENDERING):
                # kernel compiles, file loading, engines that report little (Eevee, Workbench): hang.py
                limit = silence_limit(run, self.config, (self.scene or {}).get("engine"), run.state == RENDERING)
                if now - run.last_activity > limit:
                    what = f"frame {run.frame}" if run.state == RENDERING else "start-up"
                    self._lane_failed(run, f"no progress for {int(now - run.last_activity)} s during {what}")
        self._dispatch()
        if self.frames.planned and not self.live_runs() and self.frames.pending:
            if self._wake_idle_lanes():  # the lanes that stopped for want of work are needed again
                return
            self.frames.abandon("no lane left to render it: " + (self._last_errors() or "all lanes failed"))
            self.changed = True

    def _dispatch(self) -> None:
        for run in self.runs.values():
            if run.state != READY or not self.frames.planned:
                continue
            others = sum(1 for other in self.live_runs() if other is not run)
            # An idle worker is not always free (measured: with persistent data and one fixed thread, a TBB
            # thread of Blender 5.0 spins a whole core while idle). A lane with no frame left for it, or that
            # would only hold up faster lanes, quits; it starts again when a lane loses its frame.
            backups = self.config.backups and not self.frames.pending
            runs = list(self.runs.values())
            if backups and (self._back_up_slow_frame(run) or endgame.may_back_up_later(run, runs, self.frames)):
                continue
            if not self.frames.pending or endgame.faster_without(run, self.live_runs(), self.frames, self.clock()):
                self.stop_lane(run, idle=True)
                continue
            frame = self.frames.take(run.lane.name, others)
            if frame is not None:
                self._send_frame(run, frame)

    def _send_frame(self, run: LaneRun, frame: int, backup: bool = False) -> None:
        temp_path, final = self.paths(frame, run.lane.name)
        run.move(RENDERING)
        run.frame, run.temp_path, run.backup = frame, temp_path, backup
        run.sample, run.samples, run.phase = None, None, None
        run.frame_sent_at, run.frame_sent_wall = self.clock(), self.wall_clock()
        run.times.setdefault("first_frame_sent", run.frame_sent_wall)
        run.last_activity = run.frame_sent_at
        self._handle(run).send({"cmd": "render", "frame": frame, "path": temp_path, "final": final})
        self.changed = True

    @staticmethod
    def _handle(run: LaneRun) -> WorkerHandle:  # a lane that is ready or rendering always has a worker
        if run.handle is None:
            raise RuntimeError(f"lane {run.lane.name} has no worker in state {run.state.value}")
        return run.handle

    def _back_up_slow_frame(self, run: LaneRun) -> bool:
        """Nothing left to take: render a second copy of a frame a much slower lane is still on."""
        other = endgame.slow_frame_to_back_up(run, list(self.runs.values()), self.frames, self.clock())
        if other is None or other.frame is None:
            return False
        self.frames.back_up(other.frame, run.lane.name)
        self._send_frame(run, other.frame, backup=True)
        return True

    def _wake_idle_lanes(self) -> bool:
        """Restart the lanes that quit for want of work; say whether there were any."""
        idle = [run for run in self.runs.values() if run.state == STOPPED and run.idle_stopped]
        for run in idle:
            run.idle_stopped = False
            self._launch(run)
        return bool(idle)

    def stop_lane(self, run: LaneRun, idle: bool = False) -> None:
        if run.handle is not None:
            run.handle.send({"cmd": "quit"})
        run.move(STOPPED)
        run.idle_stopped = idle
        run.times["quit_sent"] = self.wall_clock()
        self.changed = True

    def shutdown(self, grace: float = 3.0, reap: float | None = 5.0) -> None:
        """Stop every worker: idle ones are asked to quit and get ``grace`` seconds to exit; then every
        worker is killed, in-flight frames go back to the queue, temporary files are removed, and each
        worker is reaped (up to ``reap`` seconds) and its handle closed, so none is left behind."""
        quitting = [run.handle for run in self.runs.values()
                    if run.handle is not None and run.frame is None and run.state in (READY, STOPPED)]  # fmt: skip
        if grace > 0:
            for handle in quitting:
                handle.send({"cmd": "quit"})
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline and any(handle.poll() is None for handle in quitting):
                time.sleep(0.05)
        self.kill_all()
        if reap is not None:  # None: the caller reaps later (reap())
            self.reap(reap)

    def kill_all(self) -> None:
        """Kill every worker at once, without waiting (they die in parallel; in-flight frames go back); frames
        already handed in are checked and kept."""
        self.stopping = True
        for run in self.runs.values():
            if run.frame is not None:
                self.frames.release(run.frame)
            if run.handle is not None and run.handle.poll() is None:  # stamped again once it is reaped
                run.times.pop("exit", None)
            self._kill(run)
            if run.live:
                run.move(STOPPED)
            run.frame = None
        for check in self.checks.finish():
            self._on_checked(check)
        self.checks.close()
        self.changed = True

    def reap(self, wait: float = 5.0) -> None:
        """Wait for the killed workers to be gone (up to ``wait`` seconds each) and close their handles."""
        for run in self.runs.values():
            if run.handle is not None:
                if run.handle.wait(wait) is not None:
                    run.times.setdefault("exit", self.wall_clock())
                run.handle.close()

    def _kill(self, run: LaneRun) -> None:
        if run.handle is not None:
            run.handle.kill()
        self._remove_temp(run)

    def _remove_temp(self, run: LaneRun) -> None:
        if run.temp_path and os.path.exists(run.temp_path):
            try:
                os.remove(run.temp_path)
            except OSError:
                pass
        run.temp_path = None

    # -- events -----------------------------------------------------------------------------
    def handle(self, key: tuple, message: dict) -> None:
        if key == CHECKS_KEY:
            self._on_checked(message["check"])
            self.changed = True
            return
        name, generation = key
        run = self.runs.get(name)
        if run is None or generation != run.generation:
            return  # a message from an earlier, already replaced worker
        run.last_activity = self.clock()
        handler = self._handlers().get(str(message.get("event")))
        if handler:  # anything else is not part of the protocol (worker.py's docstring) and is ignored
            handler(run, message)
            self.changed = True

    def _handlers(self) -> dict[str, Callable[[LaneRun, dict], None]]:
        """Every event a worker (or its handle) sends, each handled on purpose."""
        return {
            "ready": self._on_ready, "started": self._on_started, "progress": self._on_progress,
            "phase": self._on_phase, "done": self._on_done, "frame_error": self._on_frame_error,
            "fatal": self._on_fatal, "bye": self._on_bye, "exit": self._on_exit,
        }  # fmt: skip

    def _on_started(self, run: LaneRun, message: dict) -> None:
        """The worker took the frame: nothing to change, handle() already counted it as activity."""

    def _on_bye(self, run: LaneRun, message: dict) -> None:
        """The worker acknowledged a quit; its exit event follows and finds the lane stopped."""

    def _on_ready(self, run: LaneRun, message: dict) -> None:
        if run.state != STARTING:
            return
        run.move(READY)
        run.devices_used = message.get("devices") or []
        run.note = message.get("note")
        run.pid = message.get("pid", run.pid)
        run.visible = message.get("visible")
        run.node, run.cycles_lib = message.get("node"), message.get("cycles_lib")
        run.times.update({key: value for key, value in (message.get("times") or {}).items() if key not in run.times})
        run.times.setdefault("ready", self.wall_clock())
        if self.scene is None and message.get("scene"):
            self.scene = message["scene"]
            if self.on_scene:
                self.on_scene(self.scene)

    def _on_progress(self, run: LaneRun, message: dict) -> None:
        if message.get("frame") == run.frame:
            run.sample, run.samples, run.phase = message.get("sample"), message.get("samples"), None
            run.times.setdefault("first_sample", self.wall_clock())

    def _on_phase(self, run: LaneRun, message: dict) -> None:
        run.phase = message.get("phase")

    def _on_frame_error(self, run: LaneRun, message: dict) -> None:
        if run.state == RENDERING and message.get("frame") == run.frame:
            self._lane_failed(run, message.get("error") or "render failed")

    def _on_fatal(self, run: LaneRun, message: dict) -> None:
        error = message.get("error") or "worker failed to start"
        self.fatal_errors.append(error)
        self._kill(run)
        if run.frame is not None:
            self.frames.fail(run.frame, run.lane.name, error)
        run.frame = None
        run.last_error = error
        run.failures += 1
        run.move(FAILED)  # deterministic (missing GPU, unreadable file): retrying cannot help
        run.blocklisted = True

    def _on_exit(self, run: LaneRun, message: dict) -> None:
        run.times["exit"] = self.wall_clock()
        if run.state in (STOPPED, FAILED, BACKOFF):
            return
        code = message.get("code")
        reason = f"worker exited with code {code}" if code is None or code >= 0 else f"worker killed by signal {-code}"
        if message.get("detail") and (code is None or code >= 0):
            reason += f": {message['detail'][:300]}"
        # kill -9 mid-frame comes from outside (a person, the OOM killer), never from the card: it does not
        # count toward blocklisting the lane; the frame's own rule (killed on two lanes: failed) bounds it.
        self._lane_failed(run, reason, counts=not (code == -9 and run.frame is not None))

    def _lane_failed(self, run: LaneRun, error: str, counts: bool = True) -> None:
        """A crash, hang or bad frame: kill the worker (a GPU error can poison its state), requeue the
        frame, back off and restart clean, blocklist after N in a row."""
        frame = run.frame
        problem = self.output_problem() if frame is not None and self.output_problem else None
        if problem and frame is not None:
            return self._stop_for_disk(run, frame, problem)
        if frame is not None:
            final = self.frames.fail(frame, run.lane.name, error)
            self.on_frame({"frame": frame, "lane": run.lane.name, "start": round(run.frame_sent_wall, 4),
                           "end": round(self.wall_clock(), 4), "status": "failed" if final else "retry",
                           "error": error, "attempt": self.frames.attempts.get(frame, 1)})  # fmt: skip
        self._kill(run)
        run.frame, run.sample, run.samples, run.backup = None, None, None, False
        run.last_error = error
        run.failures += 1
        run.consecutive_failures += counts
        if run.consecutive_failures >= self.config.max_lane_failures:
            run.move(FAILED)
            run.blocklisted = True
        elif self.frames.finished:
            run.move(STOPPED)
        else:
            delay = min(self.config.backoff_max, self.config.backoff_base * 2 ** max(0, run.consecutive_failures - 1))
            run.move(BACKOFF)
            run.backoff_until = self.clock() + delay
            run.restarts += 1
        if frame is not None and not self.frames.finished:
            self._wake_idle_lanes()  # they stepped aside for this lane, which has just lost its frame
        self.changed = True

    def _stop_for_disk(self, run: LaneRun, frame: int, problem: str) -> None:
        """The output cannot be written: the frame goes back unblamed, no lane is failed, the job stops."""
        self.frames.release(frame)
        self._kill(run)
        run.frame, run.sample, run.samples, run.backup = None, None, None, False
        run.move(STOPPED)
        run.last_error = self.stopped_for = problem  # the runner ends the job on its next step

    def _last_errors(self) -> str:
        errors = [run.last_error for run in self.runs.values() if run.last_error]
        return errors[-1] if errors else ""

    # -- status -----------------------------------------------------------------------------
    def eta_seconds(self) -> float | None:
        return endgame.eta_seconds(self.live_runs(), self.frames)

    def phase(self) -> str:
        return job_phase(self.live_runs())
