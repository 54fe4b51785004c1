"""Eevee and Workbench: they print no Cycles sample lines, yet every frame reports its start and end,
and hang detection judges them by the lane's own frame times (real bpy 5.0.1, software OpenGL)."""

import json
import subprocess
import sys

import pytest
from farmtest import ROOT, WORKER, run_cli

from dispatcher import jobs

SWITCH_ENGINE = """
import sys, bpy
bpy.ops.wm.open_mainfile(filepath=sys.argv[1])
scene = bpy.context.scene
scene.render.engine = sys.argv[3]
scene.eevee.taa_render_samples = 4
bpy.ops.wm.save_as_mainfile(filepath=sys.argv[2])
"""


def scene_for(engine, tiny_blend, folder):
    path = folder / f"{engine.lower()}.blend"
    if not path.exists():
        subprocess.run([sys.executable, "-c", SWITCH_ENGINE, str(tiny_blend), str(path), engine], check=True,
                       capture_output=True, timeout=120)  # fmt: skip
    return path


@pytest.fixture(scope="module")
def engine_scenes(tiny_blend, tmp_path_factory):
    folder = tmp_path_factory.mktemp("engines")
    return {engine: scene_for(engine, tiny_blend, folder) for engine in ("BLENDER_WORKBENCH", "BLENDER_EEVEE")}


def frame_records(job):
    return [json.loads(line) for line in open(f"{job}/frames.jsonl", encoding="utf-8")]


@pytest.mark.parametrize("engine", ["BLENDER_WORKBENCH", "BLENDER_EEVEE"])
def test_workbench_and_eevee_workers_report_frame_start_and_end(engine_scenes, engine, tmp_path):
    worker = subprocess.Popen([sys.executable, str(WORKER), "--blend", str(engine_scenes[engine]), "--lane", "t"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                              cwd=ROOT)  # fmt: skip
    try:
        ready = json.loads(worker.stdout.readline())
        assert ready["event"] == "ready" and ready["scene"]["engine"] == engine
        worker.stdin.write(json.dumps({"cmd": "render", "frame": 1, "path": str(tmp_path / "f1.png")}) + "\n")
        worker.stdin.flush()
        events = []
        while not events or events[-1]["event"] not in ("done", "frame_error"):
            events.append(json.loads(worker.stdout.readline()))
    finally:
        worker.kill()
        worker.wait()
    names = [event["event"] for event in events]
    assert names[0] == "started" and names[-1] == "done", names
    assert names.index("frame_start") < names.index("frame_end") < names.index("done")
    assert all(event["frame"] == 1 for event in events)
    if engine == "BLENDER_EEVEE":  # Eevee's own "Rendering i / n samples" lines become progress
        assert any(event["event"] == "progress" and event["samples"] == 4 for event in events), names


def test_a_long_eevee_frame_is_not_killed_as_hung(engine_scenes, tmp_path):
    """Eevee here takes seconds per 32x32 frame, silent between its first and last sample: far past 1 s."""
    out, job = tmp_path / "out", tmp_path / "job"
    result = run_cli("render", str(engine_scenes["BLENDER_EEVEE"]), "-o", str(out), "--job-dir", str(job),
                     "--frames", "1-2", "--cpu-lanes", "1", "--hang-timeout", "1", "--quiet", timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stderr
    records = frame_records(job)
    assert [record["status"] for record in records] == ["done", "done"], records
    assert max(record["end"] - record["start"] for record in records) > 1.0  # a frame outlasted the hang timeout


def test_a_hung_workbench_frame_is_still_caught_by_the_lanes_frame_times(engine_scenes, tmp_path):
    out, job, once = tmp_path / "out", tmp_path / "job", tmp_path / "hung-once"
    result = run_cli("render", str(engine_scenes["BLENDER_WORKBENCH"]), "-o", str(out), "--job-dir", str(job),
                     "--frames", "1-3", "--cpu-lanes", "1", "--hang-timeout", "1", "--quiet",
                     env={"GRF_FAULT": f"hang:frame=3:once={once}"}, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr
    retry = [record for record in frame_records(job) if record["status"] == "retry"]
    assert len(retry) == 1 and retry[0]["frame"] == 3 and retry[0]["error"].startswith("no progress for")
    done = {record["frame"]: record for record in frame_records(job) if record["status"] == "done"}
    slowest = max(done[frame]["end"] - done[frame]["start"] for frame in (1, 2))
    waited = retry[0]["end"] - retry[0]["start"]
    assert max(1.0, 4 * slowest) <= waited + 0.5 < max(1.0, 4 * slowest) + 5.0  # the lane's own limit, not 600 s
    assert jobs.read_status(str(job))["state"] == "done" and sorted(done) == [1, 2, 3]
