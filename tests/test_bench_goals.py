"""The issue-12 goals judged from synthetic benchmark runs (no rendering)."""

import pytest
from test_bench_units import T0, lane_run

from dispatcher import bench
from dispatcher.bench import goals


def with_setup(run, seconds):
    """A Blender run whose process was ready to render ``seconds`` after launch."""
    run.records.insert(0, {"frame": None, "lane": run.lanes[0], "start": T0, "end": T0 + seconds, "status": "setup"})
    return run


def test_goals_pass_when_per_card_meets_the_bound_starts_fast_and_lanes_end_together():
    runs = {
        "per-card": lane_run("per-card", 2, 64, 3.16, startup=2.0, gap=0.003),
        "single": lane_run("single", 1, 32, 3.16, startup=1.9, gap=0.003),
        "combined-pd": with_setup(lane_run("combined-pd", 1, 64, 1.7, startup=1.5), 1.5),
        "blender-1gpu": with_setup(lane_run("blender-1gpu", 1, 32, 3.2, startup=1.5), 1.5),
    }
    results = {target["target"]: target for target in bench.analyse(runs, lanes=2, frames=64)["targets"]}
    assert results["per-card vs one worker"]["pass"] is True
    assert results["per-card: first frame sent"]["value"] == pytest.approx(0.5)
    assert results["per-card: first frame sent"]["pass"] is True
    assert results["per-card: lanes finish together"]["pass"] is True
    assert results["1 GPU: product vs Blender + persistent data"]["pass"] is True


def test_goals_fail_on_a_late_first_frame_and_lanes_a_frame_apart():
    late = lane_run("per-card", 2, 63, 3.16, startup=4.0)  # 32 frames on gpu0, 31 on gpu1: a frame apart
    runs = {"per-card": late, "combined-pd": with_setup(lane_run("combined-pd", 1, 8, 1.0), 1.4)}
    results = {target["target"]: target for target in bench.analyse(runs, lanes=2, frames=63)["targets"]}
    assert results["per-card: first frame sent"]["pass"] is False  # 4.0 s vs 1.4 s + 1 s
    assert results["per-card: lanes finish together"]["pass"] is False
    assert results["per-card: lanes finish together"]["value"] == pytest.approx(1.0, abs=0.01)


def test_combined_defaults_on_a_few_frames_is_extrapolated():
    short = with_setup(lane_run("combined", 1, 3, 9.4, startup=2.0), 2.0)
    short.extra["extrapolate_to"] = 64
    runs = goals.with_extrapolation({"combined": short})
    assert runs["combined"].wall == pytest.approx(2.0 + 9.4 * 64)
    assert runs["combined"].extra["measured_frames"] == 3 and "extrapolated to 64" in runs["combined"].title
    row = bench.analyse({"combined": short}, lanes=2, frames=64)["rows"][0]
    assert row["frames"] == 64 and row["wall"] == pytest.approx(2.0 + 9.4 * 64)
