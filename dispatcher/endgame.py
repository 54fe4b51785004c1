"""The end of a job: which lane renders the last frames, judged from measured steady rates.

A lane's first frame carries start-up (scene sync, BVH build, kernel loading) and is several times
slower than the rest with persistent data, so paces are measured after it. A lane with only its first
frame done is estimated from the first-to-steady ratio of lanes that have rendered more. A lane leaves
the pending frames to the others only when they would clearly finish them all sooner than it could
finish one (by more than a quarter of a frame): identical cards therefore keep splitting the work evenly,
and only a really slower lane (a CPU lane beside GPUs, a throttled card) stops early. Pure functions.
"""

from __future__ import annotations

import statistics

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
