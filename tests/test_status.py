"""status.json through its one owner (dispatcher/status.py), and the lane state machine's one transition."""

import json

import pytest

from dispatcher.lane_state import FAILED, READY, RENDERING, STARTING, STOPPED, LaneRun, LaneStateError
from dispatcher.lanes import Lane
from dispatcher.status import STATUS_VERSION, JobStatus, LaneStatus, read_status, write_status


def test_round_trip_keeps_every_key_and_the_version(tmp_path):
    lane = LaneStatus(name="gpu0", state="rendering", frame=3)
    status = JobStatus(state="running", phase="rendering", job_id="j", frames={"done": 2, "total": 4},
                       failed_frames={"3": "CUDA error"}, lanes=[lane])  # fmt: skip
    write_status(str(tmp_path), status)
    raw = json.loads((tmp_path / "status.json").read_text())
    assert raw["version"] == STATUS_VERSION and raw["state"] == "running" and raw["lanes"][0]["frame"] == 3
    assert "finished_at" not in raw and "error" not in raw  # written only when they apply
    assert read_status(str(tmp_path)) == status
    assert status["frames"]["done"] == 2 and status["lanes"][0]["name"] == "gpu0"  # the old dict reading


def test_damage_is_tolerated_unknown_keys_ignored_wrong_types_defaulted(tmp_path):
    damaged = {"state": "done", "from_the_future": 1, "frames": "not a dict", "elapsed": "12", "pid": True,
               "lanes": [{"name": "cpu0", "frames_done": "many", "seconds_per_frame": 2}, "junk"]}  # fmt: skip
    (tmp_path / "status.json").write_text(json.dumps(damaged))
    status = read_status(str(tmp_path))
    assert status is not None and status.state == "done" and status.is_terminal
    assert status.frames == {} and status.elapsed == 0.0 and status.pid is None
    assert [(lane.name, lane.frames_done, lane.seconds_per_frame) for lane in status.lanes] == [("cpu0", 0, 2)]
    assert "from_the_future" not in status.to_json()
    (tmp_path / "status.json").write_text("{half a fi")
    assert read_status(str(tmp_path)) is None


def test_a_lane_moves_only_from_the_states_that_allow_it():
    run = LaneRun(Lane("cpu0", "CPU"))
    assert run.state == STARTING
    with pytest.raises(LaneStateError, match="starting -> rendering"):
        run.move(RENDERING)  # a frame is only sent to a ready worker
    run.move(READY)
    run.move(RENDERING)
    run.move(STOPPED)
    with pytest.raises(LaneStateError):
        run.move(READY)
    run.move(FAILED)
    assert run.to_status().state == "failed" and not run.live
