"""The end of a job: which lane renders the last frames, and which backs up a slow lane's frame.

Judged from measured steady rates: a lane's first frame carries start-up (scene sync, BVH build, kernel
loading) and is several times slower than the rest with persistent data, so paces are measured after
it; a lane with only its first frame done is estimated from the first-to-steady ratio of lanes that
have rendered more. A lane leaves the pending frames to the others only when they would clearly finish
them all sooner than it could finish one (by more than a quarter of a frame): identical cards keep
splitting the work evenly, and only a really slower lane (a CPU lane beside GPUs, a throttled card)
stops early. Pure decisions over the lanes' records and the frame queue; the supervisor acts on them.
"""

from __future__ import annotations

import statistics

from .frame_queue import FrameQueue
from .lane_state import READY, RENDERING, LaneRun

MARGIN = 0.25  # of the faster pace: below this, leaving frames to others is not worth an idle lane
WINDOW = 8  # steady pace: mean of the last frames after the first


def steady_pace(wall_seconds: list[float]) -> float | None:
    """Seconds per frame after the first frame; None before the second frame is done."""
    later = wall_seconds[1:][-WINDOW:]
    return sum(later) / len(later) if later else None


def first_frame_ratio(histories: list[list[float]]) -> float | None:
    """Median steady pace / first-frame time over the lanes that have both."""
    ratios = [pace / history[0] for history in histories if (pace := steady_pace(history)) and history[0] > 0]
    return statistics.median(ratios) if ratios else None


def estimated_pace(history: list[float], ratio: float | None) -> float | None:
    """A lane's expected seconds per frame from here on: steady when known, else its first frame scaled."""
    pace = steady_pace(history)
    if pace is not None:
        return pace
    if not history:
        return None
    return history[0] * ratio if ratio else history[0]


def finish_time(lanes: list[tuple[float, float]], frames: int) -> float:
    """When ``frames`` more frames are done, each given to the lane that would finish it first.

    ``lanes``: (seconds until the lane is free, its pace). Returns 0 when there is nothing to do.
    """
    free = [max(0.0, busy) for busy, _pace in lanes]
    latest = 0.0
    for _ in range(frames):
        index = min(range(len(lanes)), key=lambda i: free[i] + lanes[i][1])
        free[index] += lanes[index][1]
        latest = max(latest, free[index])
    return latest


def should_leave(mine: float | None, others: list[tuple[float, float]], pending: int) -> bool:
    """True when this idle lane (pace ``mine``) should leave the ``pending`` frames to ``others``.

    ``others``: (seconds until free, pace) of the other live lanes whose pace is known.
    """
    if mine is None or not others or pending <= 0:
        return False
    without = finish_time(others, pending)
    with_me = max(mine, finish_time(others, pending - 1))
    margin = MARGIN * min([mine] + [pace for _busy, pace in others])
    return without + margin < with_me


def pace(run: LaneRun, runs: list[LaneRun]) -> float | None:
    """A lane's expected seconds per frame from here on (steady, or its first frame scaled)."""
    return estimated_pace(run.wall_seconds, first_frame_ratio([other.wall_seconds for other in runs]))


def slow_frame_to_back_up(run: LaneRun, runs: list[LaneRun], frames: FrameQueue, now: float) -> LaneRun | None:
    """Nothing left to take: the lane whose frame ``run`` should render a second copy of, if any.

    The frame that finishes first (and validates) wins; the other copy's worker is stopped. This keeps a
    CPU lane, or a card that stalled, from holding up the end of the job.
    """
    mine = pace(run, runs)
    if mine is None:
        return None
    best, latest = None, 0.0
    for other in runs:
        if other is run or other.state != RENDERING or other.frame is None or other.backup:
            continue
        if other.frame in frames.backups or run.lane.name in frames.failed_on.get(other.frame, ()):
            continue
        elapsed = now - other.frame_sent_at
        theirs = pace(other, runs)
        # Expected finish of the other copy; a first frame of unknown pace is judged by what it took so far,
        # against this lane's own first frame (both carry start-up).
        slow = elapsed > 1.5 * max(mine, run.wall_seconds[0])
        expected = (theirs - elapsed) if theirs else (elapsed if slow else 0.0)
        if expected > 1.5 * mine and expected > latest:
            best, latest = other, expected
    return best


def may_back_up_later(run: LaneRun, runs: list[LaneRun], frames: FrameQueue) -> bool:
    """Stay ready while a lane of unknown or much slower pace still renders: it may need a backup."""
    mine = pace(run, runs)
    if mine is None:
        return False
    return any(
        other is not run and other.state == RENDERING and not other.backup
        and other.frame not in frames.backups
        and ((theirs := pace(other, runs)) is None or theirs > 1.5 * mine)
        for other in runs
    )  # fmt: skip


def faster_without(run: LaneRun, live: list[LaneRun], frames: FrameQueue, now: float) -> bool:
    """Endgame: leave the last frames to the other lanes only when they would clearly finish them all
    sooner than this lane could finish one (a CPU lane beside GPUs, a slower card); identical cards keep
    sharing the work. The fastest lane never leaves, so no frame is left behind."""
    others = []
    for other in live:
        if other is run or other.state not in (READY, RENDERING) or (theirs := pace(other, live)) is None:
            continue
        busy = theirs - (now - other.frame_sent_at) if other.state == RENDERING else 0.0
        others.append((busy, theirs))
    return should_leave(pace(run, live), others, len(frames.pending))


def eta_seconds(live: list[LaneRun], frames: FrameQueue) -> float | None:
    """Seconds until every pending and in-flight frame is done, at the lanes' steady rates."""
    rates = [1.0 / spf for run in live if (spf := pace(run, live))]
    remaining = len(frames.pending) + len(frames.in_flight)
    if not remaining:
        return 0.0
    return remaining / sum(rates) if rates else None
