"""Benchmark bookkeeping without rendering: timing -> records, ratios, targets, CLI flags, save/load."""

import argparse

import pytest

from dispatcher import bench
from dispatcher.bench import approaches
from dispatcher.bench.approaches import Run, Settings

T0 = 1_900_000_000.0


def settings(tmp_path, device="CPU", lanes=2):
    return Settings(
        device=device,
        lanes=lanes,
        threads=1 if device == "CPU" else 0,
        total_threads=2,
        frames=8,
        resolution="32x32",
        samples=4,
        triangles=20_000,
        workers_per_gpu=2,
        program="/usr/bin/python3",
        out=str(tmp_path),
        gpu_uuids=[f"GPU-{i}" for i in range(lanes)] if device != "CPU" else [],
    )


def lane_run(name, lanes, frames, per_frame, startup=1.0, gap=0.0):
    """A synthetic run: `lanes` lanes share `frames` frames round-robin, each taking per_frame seconds."""
    records, clock = [], {lane: T0 + startup for lane in range(lanes)}
    for frame in range(1, frames + 1):
        lane = (frame - 1) % lanes
        start = clock[lane]
        records.append(
            {
                "frame": frame,
                "lane": f"gpu{lane}",
                "start": start,
                "end": start + per_frame,
                "render_seconds": per_frame * 0.9,
                "status": "done",
            }
        )
        clock[lane] = start + per_frame + gap
    finished = max(clock.values())
    return Run(
        approach=name,
        variant="static",
        title=name,
        started=T0,
        finished=finished,
        lanes=[f"gpu{i}" for i in range(lanes)],
        records=records,
        frames=frames,
    )


def test_records_from_timing_and_failures():
    events = [
        {"event": "launch", "t": T0 + 0.1},
        {"event": "loaded", "frame": 1, "t": T0 + 1.0},
        {"event": "pre", "frame": 1, "t": T0 + 1.1},
        {"event": "post", "frame": 1, "t": T0 + 2.0},
        {"event": "write", "frame": 1, "t": T0 + 2.1},
        {"event": "pre", "frame": 2, "t": T0 + 2.3},
        {"event": "post", "frame": 2, "t": T0 + 3.0},
        {"event": "write", "frame": 2, "t": T0 + 3.1},
    ]
    records = approaches.records_from_timing(events, "gpu0", T0, T0 + 4.0, [1, 2, 3])
    assert records[0] == {"frame": None, "lane": "gpu0", "start": T0, "end": T0 + 1.0, "status": "setup"}
    assert records[1]["start"] == T0 + 1.0 and records[1]["end"] == T0 + 2.1
    assert records[1]["render_seconds"] == pytest.approx(0.9)
    assert records[2]["start"] == T0 + 2.1  # contiguous: Blender's own per-frame work counts in the frame
    assert records[3]["frame"] == 3 and records[3]["status"] == "failed" and records[3]["end"] == T0 + 4.0


def test_analysis_ratios_ideal_and_targets():
    runs = {
        "combined": lane_run("combined", 1, 64, 8.0),  # 512 s + start-up
        "combined-pd": lane_run("combined-pd", 1, 64, 1.3),
        "per-card": lane_run("per-card", 4, 64, 1.0, gap=0.02),
        "auto": lane_run("auto", 4, 64, 1.0, gap=0.02),
        "single": lane_run("single", 1, 16, 1.0, gap=0.02),
    }
    analysis = bench.analyse(runs, lanes=4, frames=64)
    rows = {row["approach"]: row for row in analysis["rows"]}
    assert rows["combined"]["speedup"] == pytest.approx(1.0)
    assert rows["per-card"]["speedup"] == pytest.approx(513.0 / 17.32, rel=1e-3)
    assert analysis["ideal"]["seconds_per_frame"] == pytest.approx(1.02)
    assert analysis["ideal"]["frames_per_minute"] == pytest.approx(4 * 60 * 16 / 17.32, rel=1e-3)
    assert rows["per-card"]["of_ideal"] == pytest.approx(1.0, rel=1e-3)  # same wall as one worker's 16 frames
    assert rows["combined-pd"]["of_ideal"] == pytest.approx(17.32 / 84.2, rel=1e-2)
    assert rows["per-card"]["gap_median_ms"] == pytest.approx(20.0)
    assert rows["combined"]["gap_median_ms"] is None  # Blender's own runs have no dispatcher
    results = {target["target"]: target for target in analysis["targets"]}
    assert results["per-card vs one worker"]["pass"] is True  # same wall: 17.32 s vs 17.32 s
    assert results["per-card vs combined"]["pass"] is True
    assert results["per-card vs combined-pd"]["pass"] is True  # 84.2 / 17.3 > 1.15
    assert results["overhead between frames"]["pass"] is True
    assert results["autotune vs best"]["pass"] is True
    text = bench.format_variant("static", analysis, "test machine")
    assert "ideal bound" in text and "[PASS] per-card vs combined" in text


def test_targets_not_judged_on_short_runs_and_fail_when_slow():
    runs = {
        "combined": lane_run("combined", 1, 8, 1.0),
        "per-card": lane_run("per-card", 2, 8, 1.0, gap=0.2),
        "auto": lane_run("auto", 1, 8, 1.0),
        "single": lane_run("single", 1, 4, 0.5),
    }
    results = {target["target"]: target for target in bench.analyse(runs, 2, 8)["targets"]}
    assert results["per-card vs combined"]["pass"] is None  # fewer than 64 frames
    assert results["overhead between frames"]["pass"] is False  # 200 ms gaps
    assert results["per-card vs one worker"]["pass"] is False
    assert results["autotune vs best"]["pass"] is False


def test_product_flags(tmp_path):
    cpu = settings(tmp_path)
    args, title, lanes = approaches.product_args(cpu, "per-card-m", "deforming")
    assert args[:2] == ["--device", "CPU"] and "--no-persistent-data" in args
    assert args[args.index("--cpu-lanes") + 1] == "4" and lanes == 4 and "no persistent data" in title
    args, _title, _lanes = approaches.product_args(cpu, "per-card-m", "static")
    assert "--no-persistent-data" not in args
    gpu = settings(tmp_path, device="OPTIX", lanes=4)
    args, _title, _lanes = approaches.product_args(gpu, "single", "static")
    assert args == ["--device", "OPTIX", "--layout", "per-card", "--gpus", "0"]
    args, _title, _lanes = approaches.product_args(gpu, "product-combined", "static")
    assert args[-2:] == ["--gpus", "0,1,2,3"] and "combined" in args


def test_commands_and_pinning(tmp_path):
    assert approaches.script_command("/v/bin/python3.11", "s.py", ["--x"]) == ["/v/bin/python3.11", "s.py", "--", "--x"]
    assert approaches.script_command("/opt/blender/blender", "s.py", ["--x"])[:4] == [
        "/opt/blender/blender",
        "-b",
        "--factory-startup",
        "--python",
    ]
    gpu = settings(tmp_path, device="OPTIX", lanes=3)
    assert approaches.lane_env(gpu, [2])["CUDA_VISIBLE_DEVICES"] == "GPU-2"
    assert approaches.lane_env(gpu, None)["CUDA_VISIBLE_DEVICES"] == "GPU-0,GPU-1,GPU-2"
    assert approaches.lane_env(settings(tmp_path), None)["CUDA_VISIBLE_DEVICES"] == ""


def test_run_save_load_and_collect(tmp_path, capsys):
    run = lane_run("per-card", 2, 8, 1.0)
    folder = tmp_path / "static" / "per-card"
    run.save(str(folder))
    loaded = Run.load(str(folder))
    assert loaded.wall == pytest.approx(run.wall) and len(loaded.records) == 8
    # --collect tabulates what is on disk without rendering
    (tmp_path / "settings.json").write_text(__import__("json").dumps(settings(tmp_path).__dict__))
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    code = bench.main(parser.parse_args(["--collect", "--out", str(tmp_path), "--variant", "static"]))
    assert code == 0
    out = capsys.readouterr().out
    assert "product per-card" not in out and "per-card" in out
    assert (tmp_path / "bench.png").exists() and (tmp_path / "results.json").exists()
