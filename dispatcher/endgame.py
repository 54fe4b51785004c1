"""The end of a job: which lane backs up a slow lane's frame, and when a slow lane should step aside.

Pure decisions over the lanes' records and the frame queue; the supervisor acts on them.
"""

from __future__ import annotations

from .frame_queue import FrameQueue
from .lane_state import RENDERING, LaneRun


def slow_frame_to_back_up(run: LaneRun, runs: list[LaneRun], frames: FrameQueue, now: float) -> LaneRun | None:
    """Nothing left to take: the lane whose frame ``run`` should render a second copy of, if any.

    The frame that finishes first (and validates) wins; the other copy's worker is stopped. This keeps a
    CPU lane, or a card that stalled, from holding up the end of the job.
    """
    mine = run.seconds_per_frame()
    if mine is None:
        return None
    best, latest = None, 0.0
    for other in runs:
        if other is run or other.state != RENDERING or other.frame is None or other.backup:
            continue
        if other.frame in frames.backups or run.lane.name in frames.failed_on.get(other.frame, ()):
            continue
        elapsed = now - other.frame_sent_at
        theirs = other.seconds_per_frame()
        # Expected finish of the other copy; a first frame of unknown pace is judged by what it took so far.
        expected = (theirs - elapsed) if theirs else (elapsed if elapsed > 1.5 * mine else 0.0)
        if expected > 1.5 * mine and expected > latest:
            best, latest = other, expected
    return best


def may_back_up_later(run: LaneRun, runs: list[LaneRun], frames: FrameQueue) -> bool:
    """Stay ready while a lane of unknown or much slower pace still renders: it may need a backup."""
    mine = run.seconds_per_frame()
    if mine is None:
        return False
    return any(
        other is not run and other.state == RENDERING and not other.backup
        and other.frame not in frames.backups
        and ((theirs := other.seconds_per_frame()) is None or theirs > 1.5 * mine)
        for other in runs
    )  # fmt: skip


def faster_without(run: LaneRun, live: list[LaneRun], frames: FrameQueue) -> bool:
    """Endgame: leave the last frames to faster lanes when they would finish them all sooner than this
    lane could finish one (a CPU lane beside GPUs, or a slower card, must not hold up the job)."""
    mine = run.seconds_per_frame()
    if mine is None:
        return False
    # Only strictly faster lanes count, so the fastest lane never waits and no frame is left behind.
    rates = [
        1.0 / max(spf, 1e-6)
        for other in live
        if other is not run and (spf := other.seconds_per_frame()) is not None and spf < mine
    ]
    if not rates:
        return False
    return len(frames.pending) / sum(rates) < mine
