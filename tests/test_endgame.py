"""The endgame from steady rates: a supervisor over fake workers and a fake clock, plus the pure rules."""

import random

from test_supervisor import Rig

from dispatcher import endgame
from dispatcher.supervisor import RENDERING


def simulate(rig, durations, lanes=("a", "b")):
    """Drive every lane until the queue is finished: ``durations[lane](k)`` is the lane's k-th frame time.

    Returns {lane: (frames done, time its last frame ended)}.
    """
    rig.sup.start()
    rig.ready(*lanes)
    count = {lane: 0 for lane in lanes}
    ends = dict.fromkeys(lanes, 0.0)
    due = {lane: durations[lane](0) for lane in lanes if rig.state(lane) == RENDERING}
    while not rig.queue.finished:
        lane = min(due, key=due.get)
        rig.clock.now = due.pop(lane)
        rig.finish(lane)
        count[lane] += 1
        ends[lane] = rig.clock.now
        for other in lanes:  # whoever was just handed a frame (the finisher, or a lane that took a backup)
            if rig.state(other) == RENDERING and other not in due:
                due[other] = rig.clock.now + durations[other](count[other])
    return {lane: (count[lane], ends[lane]) for lane in lanes}


def h100_like(first, steady, seed):
    jitter = random.Random(seed)
    return lambda k: first if k == 0 else steady * (1 + jitter.uniform(-0.01, 0.01))


def test_identical_cards_split_64_frames_evenly_and_finish_within_half_a_frame(tmp_path):
    # measured on 2x H100: first frames 12.2 and 12.6 s, then ~3.16 s; the old rule left lanes 6.3 s apart
    rig = Rig(tmp_path, frames=range(1, 65), hang_timeout=1000)
    result = simulate(rig, {"a": h100_like(12.2, 3.16, 1), "b": h100_like(12.6, 3.17, 2)})
    (frames_a, end_a), (frames_b, end_b) = result["a"], result["b"]
    assert frames_a + frames_b == 64 and abs(frames_a - frames_b) <= 1, result
    assert abs(end_a - end_b) <= 0.5 * 3.16, result
    assert not any(record.get("backup") for record in rig.records)  # neither card is slower: no second copies


def test_identical_cards_with_a_short_job_still_share_the_last_frames(tmp_path):
    rig = Rig(tmp_path, frames=range(1, 7), hang_timeout=1000)  # 3 frames each: paces known only from the second frame
    result = simulate(rig, {"a": h100_like(10.5, 3.2, 3), "b": h100_like(10.9, 3.25, 4)})
    assert sorted(count for count, _end in result.values()) == [3, 3], result
    assert abs(result["a"][1] - result["b"][1]) <= 0.5 * 3.2


def test_a_really_slower_lane_stops_early_and_is_backed_up(tmp_path):
    # a CPU lane beside a GPU: 10x slower; it renders while much is left, then leaves the rest
    rig = Rig(tmp_path, lanes=("gpu", "cpu"), frames=range(1, 41), hang_timeout=1000)
    result = simulate(rig, {"gpu": h100_like(4.0, 1.0, 5), "cpu": h100_like(20.0, 10.0, 6)}, lanes=("gpu", "cpu"))
    frames_gpu, end_gpu = result["gpu"]
    frames_cpu, end_cpu = result["cpu"]
    assert frames_gpu + frames_cpu == 40 and 1 <= frames_cpu <= 4
    assert end_cpu <= end_gpu + 0.5  # the slow lane never holds up the end of the job
    assert end_gpu < 4.0 + 39 * 1.0  # and its frames did help: sooner than the GPU alone


def test_steady_pace_leaves_out_the_first_frame():
    assert endgame.steady_pace([12.0]) is None
    assert endgame.steady_pace([12.0, 3.0, 3.2]) == 3.1
    ratio = endgame.first_frame_ratio([[12.0, 3.0, 3.0], [12.4]])
    assert ratio == 0.25
    assert endgame.estimated_pace([12.4], ratio) == 3.1  # a lane with only its first frame done
    assert endgame.estimated_pace([], ratio) is None


def test_should_leave_only_when_clearly_better():
    # an idle lane as fast as the busy one takes the last frame (it finishes sooner than waiting for the other)
    assert not endgame.should_leave(3.17, [(2.0, 3.16)], pending=1)
    # a lane ten times slower leaves one frame to a GPU that is free in a second
    assert endgame.should_leave(10.0, [(1.0, 1.0)], pending=1)
    # ...but helps while plenty is left
    assert not endgame.should_leave(10.0, [(1.0, 1.0)], pending=30)
    # unknown pace (first frame not done): never leaves
    assert not endgame.should_leave(None, [(0.0, 1.0)], pending=1)
    assert endgame.finish_time([(0.0, 1.0), (0.5, 1.0)], 3) == 2.0


def test_a_first_frame_no_slower_than_the_others_is_not_backed_up(tmp_path):
    # measured on the 2-core CI box: lane b's first frame (start-up included) took 0.47 s while lane a,
    # after its own 0.3 s first frame, rendered the rest at 0.05 s; b is not stuck, so no second copy
    rig = Rig(tmp_path, frames=range(1, 9), hang_timeout=1000)
    result = simulate(rig, {"a": h100_like(0.3, 0.05, 7), "b": lambda k: 0.4 if k == 0 else 0.05})
    assert not any(record.get("backup") for record in rig.records) and result["b"][0] >= 1
    # ...but one that takes far longer than the others' first frame (a stalled card) is
    rig = Rig(tmp_path / "x", frames=range(1, 9), hang_timeout=1000)
    (tmp_path / "x").mkdir()
    simulate(rig, {"a": h100_like(0.3, 0.05, 8), "b": lambda k: 5.0})
    assert [record["frame"] for record in rig.records if record.get("backup")] == [2]
