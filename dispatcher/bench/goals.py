"""The issue-12 goals, judged from benchmark runs (never imports bpy).

* per-card >= 0.98 x the ideal bound (one persistent worker alone on one GPU rendering F/N frames);
* the first frame is sent no later than 1 s after a bare Blender would start it (bpy imported, file
  opened, devices set: the set-up of Blender's own runs);
* lanes on identical cards finish within half a frame time of each other;
* the same on 1 GPU (the product alone on one GPU vs Blender alone there with persistent data);
* the split of CPU threads between workers, measured (per-card-threads vs per-card; not judged).
"""

from __future__ import annotations

import dataclasses

from .. import report

OF_IDEAL = 0.98
FIRST_FRAME_SLACK = 1.0
LANE_SPREAD_FRAMES = 0.5


def setup_seconds(run) -> float | None:
    """Launch -> ready to render of a Blender run (its 'setup' records); the shortest lane."""
    values = [
        end - start
        for record in run.records
        if record.get("status") == "setup"
        and (end := report._number(record.get("end"))) is not None
        and (start := report._number(record.get("start"))) is not None
    ]
    return min(values) if values else None


def with_extrapolation(runs: dict) -> dict:
    """Replace a run that rendered only its first k frames by one whose wall is extrapolated to all F:
    set-up + (wall - set-up) x F / k (Blender's combined mode renders every frame alike)."""
    result = dict(runs)
    for name, run in runs.items():
        target = run.extra.get("extrapolate_to")
        done = run.job().frames_done
        if not target or not done or not run.ok:
            continue
        setup = setup_seconds(run) or 0.0
        wall = setup + (run.wall - setup) * target / done
        extra = dict(run.extra, measured_frames=done, measured_wall=run.wall)
        title = f"{run.title} ({done} frames, extrapolated to {target})"
        result[name] = dataclasses.replace(run, finished=run.started + wall, frames=target, extra=extra, title=title)
    return result


def first_frame_sent(run) -> float | None:
    """Seconds from launching the command to the first frame handed to a worker."""
    starts = [
        start
        for record in run.records
        if record.get("status") != "setup" and record.get("frame") is not None
        and (start := report._number(record.get("start"))) is not None
    ]  # fmt: skip
    return min(starts) - run.started if starts else None


def bare_start(runs: dict, names=("blender-1gpu", "combined-pd", "combined")) -> float | None:
    values = [value for name in names if name in runs and runs[name].ok and (value := setup_seconds(runs[name]))]
    return min(values) if values else None


def lane_spread(run) -> tuple[float, float] | None:
    """(seconds between the lanes' last frames, the steady seconds per frame)."""
    ends: dict[str, float] = {}
    for record in run.records:
        end = report._number(record.get("end"))
        if record.get("status") == "done" and end is not None:
            lane = str(record.get("lane"))
            ends[lane] = max(ends.get(lane, 0.0), end)
    pace = report.steady_seconds_per_frame(run.records)
    if len(ends) < 2 or not pace:
        return None
    return max(ends.values()) - min(ends.values()), pace


def judge(runs: dict, add) -> None:
    """Call ``add(name, value, limit, passed, text)`` for each goal the runs allow to judge."""
    per_card, single = runs.get("per-card"), runs.get("single")
    if per_card and single and per_card.ok and single.ok and per_card.wall:
        share = single.wall / per_card.wall
        add("per-card vs one worker", share, OF_IDEAL, share >= OF_IDEAL,
            f"per-card {per_card.wall:.1f} s for {per_card.frames} frames; ideal bound (one worker alone, "
            f"{single.frames} frames) {single.wall:.1f} s: {share:.3f} of it (>= {OF_IDEAL})")  # fmt: skip
    bare = bare_start(runs)
    for name, label in (("per-card", "per-card"), ("single", "1 GPU")):
        run = runs.get(name)
        sent = first_frame_sent(run) if run and run.ok else None
        if sent is not None and bare is not None:
            late = sent - bare
            add(f"{label}: first frame sent", late, FIRST_FRAME_SLACK, late <= FIRST_FRAME_SLACK,
                f"first frame sent {sent:.2f} s after the command; a bare Blender is ready after {bare:.2f} s: "
                f"{late:+.2f} s (<= {FIRST_FRAME_SLACK:.0f} s)")  # fmt: skip
    spread = lane_spread(per_card) if per_card and per_card.ok else None
    if spread:
        gap, pace = spread
        text = f"lanes' last frames {gap:.2f} s apart = {gap / pace:.2f} frame times (<= {LANE_SPREAD_FRAMES})"
        add("per-card: lanes finish together", gap / pace, LANE_SPREAD_FRAMES, gap <= LANE_SPREAD_FRAMES * pace, text)
    alone = runs.get("blender-1gpu")
    if single and alone and single.ok and alone.ok and single.wall:
        share = alone.wall / single.wall
        add("1 GPU: product vs Blender + persistent data", share, OF_IDEAL, share >= OF_IDEAL,
            f"product {single.wall:.1f} s vs Blender alone {alone.wall:.1f} s for {single.frames} frames: "
            f"{share:.3f} (>= {OF_IDEAL})")  # fmt: skip
    threads = runs.get("per-card-threads")
    if threads and per_card and threads.ok and per_card.ok and threads.wall:
        add("CPU threads per worker", per_card.wall / threads.wall, None, None,
            f"default share {per_card.wall:.1f} s vs {threads.title.split(', ')[-1]} {threads.wall:.1f} s "
            f"({per_card.wall / threads.wall:.3f}x; measured, not judged)")  # fmt: skip
