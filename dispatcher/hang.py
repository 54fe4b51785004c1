"""How long a lane may stay silent before it counts as hung.

Opening the .blend is silent too: start-up gets the first-frame allowance. Cycles reports every few
samples, so silence while it renders means a hang after ``hang_timeout``. Eevee reports only
now and then (its first and last sample), Workbench not at all between a frame's start and end: for
them a frame may take as long as the lane's own slowest frame so far, times ``HISTORY_FACTOR``, and
their first frame (shader compilation, no history yet) gets the first-frame allowance.
"""

from __future__ import annotations

STEADY_PROGRESS_ENGINES = {"CYCLES"}
HISTORY_FACTOR = 4.0


def silence_limit(run, config, engine: str | None, rendering: bool) -> float:
    """Seconds of silence allowed to ``run`` now (a LaneRun; ``config`` a SupervisorConfig)."""
    if not rendering:  # opening the .blend: a large scene or its libraries may load for minutes, silently
        return max(config.hang_timeout, config.first_frame_timeout)
    if run.lane.is_gpu and not run.rendered_once:
        return config.first_frame_timeout  # kernel compilation on a fresh card
    if engine is None or engine in STEADY_PROGRESS_ENGINES:
        return config.hang_timeout
    if not run.wall_seconds:
        return max(config.hang_timeout, config.first_frame_timeout)
    return max(config.hang_timeout, HISTORY_FACTOR * max(run.wall_seconds))
