"""A handed-in frame is checked on a thread: the worker goes on at once, nothing unchecked reaches its name."""

import time

from test_supervisor import Rig, png_bytes

from dispatcher.supervisor import BACKOFF, RENDERING


def hand_in(rig, lane, valid=True):
    """Write the lane's frame and report it done without running the loop (the check is in the background)."""
    frame = rig.current(lane)
    temp, _ = rig.sup.paths(frame, lane)
    with open(temp, "wb") as handle:
        handle.write(png_bytes() if valid else b"\x89PNG\r\n\x1a\n")
    rig.sup.handle(rig.workers[lane].key, {"event": "done", "frame": frame, "seconds": 0.5})
    return frame


def settle(rig, timeout=10.0):
    deadline = time.monotonic() + timeout
    while rig.sup.checks.busy() and time.monotonic() < deadline:
        rig.sup.step(timeout=0.05)
    assert not rig.sup.checks.busy()


def test_the_worker_gets_its_next_frame_before_the_last_one_is_checked(tmp_path):
    rig = Rig(tmp_path, lanes=("a",), frames=range(1, 3), background_checks=True)
    rig.sup.start()
    rig.ready("a")
    assert hand_in(rig, "a") == 1
    assert rig.state("a") == RENDERING and rig.current("a") == 2  # sent at once, in the same event
    assert rig.workers["a"].sent[-1] == {"cmd": "render", "frame": 2, "path": rig.sup.paths(2, "a")[0],
                                         "final": rig.sup.paths(2, "a")[1]}  # fmt: skip
    assert 1 not in rig.queue.done and not rig.sup.finished
    settle(rig)
    assert rig.queue.done == {1} and (tmp_path / "f1.png").exists() and not (tmp_path / ".f1.a.part").exists()
    assert [record["status"] for record in rig.records] == ["done"]
    hand_in(rig, "a")
    assert not rig.sup.finished  # frame 2 is handed in but not checked: the job is not over
    settle(rig)
    assert rig.sup.finished and rig.queue.done == {1, 2}


def test_a_bad_frame_found_later_is_redone_and_its_lane_restarts_without_blaming_the_next_frame(tmp_path):
    rig = Rig(tmp_path, lanes=("a", "b"), frames=range(1, 5), background_checks=True)
    rig.sup.start()
    rig.ready("a", "b")
    assert hand_in(rig, "a", valid=False) == 1
    assert rig.current("a") == 3  # lane a went on with frame 3 before frame 1 was found bad
    settle(rig)
    assert not (tmp_path / "f1.png").exists() and not (tmp_path / ".f1.a.part").exists()
    assert rig.records[-1]["status"] == "retry" and "output not valid" in rig.records[-1]["error"]
    assert rig.state("a") == BACKOFF and rig.workers["a"].killed
    assert rig.queue.pending == [3, 1, 4]
    assert "a" in rig.queue.failed_on[1] and "a" not in rig.queue.failed_on.get(3, set())
    assert rig.queue.attempts[3] == 0  # released, not counted as a try


def test_frames_handed_in_before_a_cancel_are_checked_and_kept(tmp_path):
    rig = Rig(tmp_path, lanes=("a", "b"), frames=range(1, 5), background_checks=True)
    rig.sup.start()
    rig.ready("a", "b")
    hand_in(rig, "a")
    rig.sup.shutdown(grace=0)
    assert (tmp_path / "f1.png").exists() and 1 in rig.queue.done
    assert set(rig.queue.pending) == {2, 3, 4} and not rig.queue.in_flight
    assert not list(tmp_path.glob(".*.part"))


def test_two_bad_frames_from_one_worker_restart_its_lane_once(tmp_path):
    """The second bad frame's check arrives while the lane already backs off for the first one."""
    rig = Rig(tmp_path, lanes=("a", "b"), frames=range(1, 7), background_checks=True)
    rig.sup.start()
    rig.ready("a", "b")
    assert hand_in(rig, "a", valid=False) == 1
    assert hand_in(rig, "a", valid=False) == 3  # handed in before the first check came back
    settle(rig)
    assert rig.state("a") == BACKOFF and rig.sup.runs["a"].restarts == 1
    assert [record["status"] for record in rig.records] == ["retry", "retry"]
    assert {1, 3} <= set(rig.queue.pending) and not (tmp_path / "f1.png").exists()
