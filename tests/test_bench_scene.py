"""The benchmark scene builder and the Blender-mode reference runner, run for real with the venv's bpy."""

import json
import os
import subprocess
import sys

import pytest

from dispatcher.bench import approaches

pytest.importorskip("bpy")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def build(tmp_path, name, *extra):
    path = str(tmp_path / f"{name}.blend")
    argv = [sys.executable, approaches.SCENE_SCRIPT, "--", "--output", path, *extra]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=True)
    line = [line for line in result.stdout.splitlines() if line.startswith("BENCH_SCENE ")][-1]
    return path, json.loads(line.split(" ", 1)[1])


def inspect(path):
    worker = os.path.join(ROOT, "dispatcher", "blender_scripts", "worker.py")
    argv = [sys.executable, worker, "--blend", path, "--inspect"]
    result = subprocess.run(
        argv, capture_output=True, text=True, timeout=300, check=False, env=dict(os.environ, CUDA_VISIBLE_DEVICES="")
    )
    for line in result.stdout.splitlines():
        if line.startswith("{") and '"scene"' in line:
            return json.loads(line)
    pytest.skip(f"worker --inspect not available: {result.stderr[-300:]}")


def test_default_scene_is_realistic(tmp_path):
    path, facts = build(tmp_path, "full", "--frames", "64")
    assert facts["triangles"] >= 500_000
    assert facts["resolution"] == [1280, 720] and facts["samples"] == 128 and facts["frames"] == 64
    assert os.path.getsize(path) > 1_000_000


def test_quick_variants_and_inspection(tmp_path):
    quick = ["--triangles", "20000", "--frames", "8", "--resolution", "32x32", "--samples", "4"]
    static, facts = build(tmp_path, "static", *quick)
    deforming, deforming_facts = build(tmp_path, "deforming", *quick, "--deforming")
    assert 10_000 <= facts["triangles"] <= 40_000
    assert deforming_facts["deforming"] is True
    static_info, deforming_info = inspect(static), inspect(deforming)
    assert static_info["deforming"] is False  # only the camera moves
    assert deforming_info["deforming"] is True  # keyed Wave/twist modifiers and shape keys
    assert static_info["camera"] is True and static_info["engine"] == "CYCLES"
    assert (static_info["frame_start"], static_info["frame_end"]) == (1, 8)


def test_reference_runner_times_each_frame(tmp_path):
    quick = ["--triangles", "5000", "--frames", "3", "--resolution", "16x16", "--samples", "1"]
    blend, _facts = build(tmp_path, "tiny", *quick)
    timing = str(tmp_path / "t.jsonl")
    out = tmp_path / "frames"
    argv = [
        sys.executable,
        approaches.RUN_SCRIPT,
        "--",
        "--blend",
        blend,
        "--frames",
        "1-3",
        "--output",
        str(out),
        "--device",
        "CPU",
        "--timing",
        timing,
        "--persistent-data",
        "1",
        "--threads",
        "1",
    ]
    subprocess.run(
        argv, capture_output=True, text=True, timeout=300, check=True, env=dict(os.environ, CUDA_VISIBLE_DEVICES="")
    )
    assert sorted(os.listdir(out)) == ["frame_0001.png", "frame_0002.png", "frame_0003.png"]
    events = approaches.read_timing(timing)
    records = approaches.records_from_timing(events, "cpu0", events[0]["t"] - 0.5, events[-1]["t"], [1, 2, 3])
    done = [record for record in records if record["status"] == "done"]
    assert [record["frame"] for record in done] == [1, 2, 3]
    assert all(record["render_seconds"] is not None and record["render_seconds"] >= 0 for record in done)
    assert records[0]["status"] == "setup"
