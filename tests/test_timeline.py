"""The per-phase timeline of a real job (bpy 5.0.1, Cycles on the CPU): every step stamped, in order."""

import json

from farmtest import run_cli, worker_processes

from dispatcher import jobs, timeline

ORDER = (
    "spawned", "bpy_imported", "file_opened", "devices_set", "ready",
    "first_frame_sent", "first_sample", "first_frame_done", "last_frame_done", "exit",
)  # fmt: skip


def test_job_timeline_has_every_phase_in_order_and_report_prints_it(tiny_blend, tmp_path):
    out, job = tmp_path / "out", tmp_path / "job"
    result = run_cli("render", str(tiny_blend), "-o", str(out), "--job-dir", str(job), "--cpu-lanes", "2")
    assert result.returncode == 0, result.stderr
    data = timeline.load(str(job))
    assert data is not None and sorted(data["lanes"]) == ["cpu0", "cpu1"]
    steps = data["job"]
    assert steps["command"] <= steps["dispatcher_ready"] <= steps["first_frame_sent"] <= steps["last_frame_done"]
    assert steps["last_frame_done"] <= steps["workers_stopped"] <= steps["exit"]
    for lane, events in data["lanes"].items():
        # a 4-sample 32x32 frame may end before Blender reports any sample line
        stamps = [events[key] for key in ORDER if key != "first_sample" or key in events]
        assert stamps == sorted(stamps), (lane, events)
    # the job's end is not held up by its workers: the final status is written before they are reaped
    status = jobs.read_status(str(job))
    assert status["state"] == "done"
    assert steps["last_frame_done"] <= status["finished_at"] <= steps["workers_stopped"] + 0.5
    assert not worker_processes(str(tiny_blend))
    # every frame of frames.jsonl lies between the lane's first frame sent and its last frame done
    records = [json.loads(line) for line in (job / "frames.jsonl").read_text().splitlines()]
    for record in records:
        lane = data["lanes"][record["lane"]]
        assert lane["first_frame_sent"] - 0.01 <= record["start"] <= record["end"] <= lane["last_frame_done"] + 0.01
    shown = run_cli("report", str(job))
    assert shown.returncode == 0, shown.stderr
    assert "first frame sent" in shown.stdout and "bpy imported" in shown.stdout and "cpu1" in shown.stdout
    as_json = json.loads(run_cli("report", str(job), "--json").stdout)
    assert 0 <= as_json["timeline"]["job"]["first_frame_sent"] < as_json["timeline"]["job"]["exit"]
