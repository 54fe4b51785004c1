"""--layout auto in a real job: lanes start at once, and are re-planned when the scene calls for it."""

import json

from farmtest import build_scene, worker_processes

from dispatcher import jobs
from dispatcher.devices import DeviceReport
from dispatcher.runner import run_job
from dispatcher.spec import JobSpec


def test_auto_layout_replans_when_the_scene_has_fewer_frames_than_lanes(scenes, tmp_path):
    blend = build_scene(scenes / "two_frames.blend", frames=2)
    # A 16-core CPU-only machine: the provisional choice is 4 CPU lanes; a 2-frame scene needs only 2.
    report = DeviceReport(reason="test: no GPU", cpu={"usable_cores": 16, "logical_cores": 16,
                                                      "memory_available_mb": 16000})  # fmt: skip
    spec = JobSpec(blend=str(blend), output_dir=str(tmp_path / "out"), layout="auto")
    job_dir = jobs.create_job(spec, job_dir=str(tmp_path / "job"))
    status = run_job(job_dir, report=report, handle_signals=False)
    assert status["state"] == "done" and status["frames"]["done"] == 2
    assert status["autotune"]["cpu_lanes"] == 2 and "no GPU" in status["autotune"]["reason"]
    assert [lane["name"] for lane in status["lanes"]] == ["cpu0", "cpu1"]
    with open(f"{job_dir}/frames.jsonl", encoding="utf-8") as handle:
        done = [json.loads(line)["frame"] for line in handle if '"done"' in line]
    assert sorted(done) == [1, 2]
    assert not worker_processes(str(blend))
    # A rerun knows the scene already: no provisional lanes, the right layout from the start. (Its own frames
    # are done, so they are removed first: a resume of an intact job starts no worker at all.)
    for frame in (tmp_path / "out").glob("frame_*.png"):
        frame.unlink()
    spec2 = JobSpec(blend=str(blend), output_dir=str(tmp_path / "out"), layout="auto", overwrite="overwrite")
    job2 = jobs.create_job(spec2, job_dir=str(tmp_path / "job"))
    assert run_job(job2, report=report, handle_signals=False)["autotune"]["cpu_lanes"] == 2
