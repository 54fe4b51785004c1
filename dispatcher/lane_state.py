"""A lane's runtime record and its states: the one place that says which state may follow which.

States: starting -> ready <-> rendering; a live state -> backoff -> starting (after a failure);
any -> failed (blocklisted or fatal); a live state -> stopped (no work left, or shutdown);
stopped -> starting (an idle lane needed again).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from .lanes import Lane
from .process import WorkerHandle
from .status import LaneStatus


class LaneState(StrEnum):
    STARTING = "starting"
    READY = "ready"
    RENDERING = "rendering"
    BACKOFF = "backoff"
    FAILED = "failed"
    STOPPED = "stopped"


STARTING, READY, RENDERING = LaneState.STARTING, LaneState.READY, LaneState.RENDERING
BACKOFF, FAILED, STOPPED = LaneState.BACKOFF, LaneState.FAILED, LaneState.STOPPED
LIVE_STATES = (STARTING, READY, RENDERING, BACKOFF)

# new state -> the states it may be entered from
ALLOWED_FROM: dict[LaneState, frozenset[LaneState]] = {
    STARTING: frozenset({STARTING, BACKOFF, STOPPED}),
    READY: frozenset({STARTING, RENDERING}),
    RENDERING: frozenset({READY}),
    BACKOFF: frozenset({STARTING, READY, RENDERING}),
    FAILED: frozenset(LaneState),
    STOPPED: frozenset({STARTING, READY, RENDERING, BACKOFF, STOPPED}),
}


class LaneStateError(RuntimeError):
    """A transition the state machine does not allow (a bug in the supervisor, never a worker's fault)."""


@dataclass
class LaneRun:
    """Runtime state of one lane."""

    lane: Lane
    state: LaneState = STARTING
    handle: WorkerHandle | None = None
    generation: int = 0
    frame: int | None = None
    temp_path: str | None = None
    frame_sent_at: float = 0.0
    frame_sent_wall: float = 0.0
    sample: int | None = None
    samples: int | None = None
    frames_done: int = 0
    render_seconds: list[float] = field(default_factory=list)
    wall_seconds: list[float] = field(default_factory=list)
    consecutive_failures: int = 0
    failures: int = 0
    restarts: int = 0
    blocklisted: bool = False
    last_error: str | None = None
    last_activity: float = 0.0
    backoff_until: float = 0.0
    devices_used: list = field(default_factory=list)
    note: str | None = None
    phase: str | None = None
    pid: int | None = None
    visible: str | None = None  # CUDA_VISIBLE_DEVICES as the worker saw it
    node: str | None = None  # host the worker runs on (Ray)
    rendered_once: bool = False
    idle_stopped: bool = False  # quit for want of work; may be started again
    backup: bool = False  # the current frame is a second copy of another lane's frame
    times: dict = field(default_factory=dict)  # timeline events (wall clock), see timeline.py
    cycles_lib: str | None = None  # the worker's Cycles kernel folder (kernels.py)

    def move(self, new: LaneState) -> None:
        """The one way to change state: refuses a transition that ALLOWED_FROM does not list."""
        if self.state not in ALLOWED_FROM[new]:
            raise LaneStateError(f"lane {self.lane.name}: {self.state.value} -> {new.value} is not allowed")
        self.state = new

    @property
    def live(self) -> bool:
        return self.state in LIVE_STATES

    def seconds_per_frame(self) -> float | None:
        recent = self.wall_seconds[-8:]
        return sum(recent) / len(recent) if recent else None

    def to_status(self) -> LaneStatus:
        spf = self.seconds_per_frame()
        return LaneStatus(
            name=self.lane.name,
            state=self.state.value,
            device=self.lane.describe(),
            device_type=self.lane.device_type,
            gpus=[gpu.uuid for gpu in self.lane.gpus],
            devices_used=self.devices_used,
            pid=self.pid if self.live else None,
            frame=self.frame,
            sample=self.sample,
            samples=self.samples,
            frames_done=self.frames_done,
            seconds_per_frame=round(spf, 3) if spf else None,
            failures=self.failures,
            restarts=self.restarts,
            blocklisted=self.blocklisted,
            last_error=self.last_error,
            note=self.note,
            phase=self.phase,
            visible_devices=self.visible,
            node=self.node,
        )


def job_phase(live: list[LaneRun]) -> str:
    """What the live lanes are doing, as the job's phase."""
    if any(run.phase == "compiling GPU kernels" for run in live):
        return "compiling GPU kernels"
    if any(run.state == RENDERING for run in live):
        return "rendering"
    if any(run.state in (STARTING, BACKOFF) for run in live):
        return "starting workers"
    return "finishing"
