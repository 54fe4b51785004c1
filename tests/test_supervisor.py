"""The lane state machine, driven by a fake clock and fake worker processes."""

import struct
import zlib

import pytest

from dispatcher.frame_queue import FrameQueue
from dispatcher.lanes import Lane
from dispatcher.supervisor import BACKOFF, FAILED, READY, RENDERING, STARTING, STOPPED, Supervisor, SupervisorConfig


def png_bytes(width=4, height=4) -> bytes:
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + b"\x80" * width * 3 for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class FakeWorker:
    def __init__(self, key):
        self.key, self.pid, self.sent, self.killed, self.code = key, 1000 + key[1], [], False, None

    def send(self, message):
        self.sent.append(message)

    def poll(self):
        return self.code

    def kill(self):
        self.killed, self.code = True, -9

    def wait(self, timeout=None):
        return self.code

    def close(self):
        pass


class Rig:
    """A supervisor over fake workers; `workers[lane]` is the lane's current fake process."""

    def __init__(self, tmp_path, lanes=("a", "b"), frames=range(1, 5), device_type="CPU", **config):
        self.tmp, self.clock, self.workers, self.started = tmp_path, FakeClock(), {}, []
        self.queue = FrameQueue()
        self.records = []
        self.sup = Supervisor(
            [Lane(name, device_type) for name in lanes],
            self.queue,
            start_worker=self.start,
            paths=lambda frame, lane: (str(tmp_path / f".f{frame}.{lane}.part"), str(tmp_path / f"f{frame}.png")),
            # checks in the caller: the fake clock sees each frame checked before the next event
            config=SupervisorConfig(**{"hang_timeout": 10, "first_frame_timeout": 100, "background_checks": False,
                                       **config}),  # fmt: skip
            clock=self.clock,
            wall_clock=self.clock,
            on_frame=self.records.append,
        )
        self.queue.plan(list(frames))

    def start(self, lane, key, inbox):
        worker = FakeWorker(key)
        self.workers[lane.name] = worker
        self.started.append(lane.name)
        return worker

    def emit(self, lane, **message):
        self.sup.handle(self.workers[lane].key, message)
        self.sup.tick()

    def ready(self, *lanes):
        for lane in lanes:
            self.emit(lane, event="ready", devices=[{"id": "CPU"}], scene={"camera": True})

    def state(self, lane):
        return self.sup.runs[lane].state

    def current(self, lane):
        return self.sup.runs[lane].frame

    def finish(self, lane, valid=True):
        frame = self.current(lane)
        temp, _ = self.sup.paths(frame, lane)
        with open(temp, "wb") as handle:
            handle.write(png_bytes() if valid else b"\x89PNG\r\n\x1a\n")
        self.emit(lane, event="done", frame=frame, seconds=0.5)
        return frame


def test_frames_flow_to_ready_lanes_one_at_a_time(tmp_path):
    rig = Rig(tmp_path)
    rig.sup.start()
    assert rig.state("a") == STARTING and rig.state("b") == STARTING
    rig.ready("a", "b")
    assert rig.state("a") == RENDERING and rig.current("a") == 1 and rig.current("b") == 2
    assert rig.workers["a"].sent[-1]["cmd"] == "render"
    assert rig.finish("a") == 1
    assert rig.current("a") == 3  # the faster lane takes the next frame at once
    rig.finish("a"), rig.finish("b"), rig.finish("a")
    assert rig.queue.finished and rig.sup.finished
    assert sorted(rig.queue.done) == [1, 2, 3, 4]
    assert all((tmp_path / f"f{frame}.png").exists() for frame in range(1, 5))
    assert not list(tmp_path.glob(".*.part"))
    assert rig.state("a") == STOPPED and {"cmd": "quit"} in rig.workers["a"].sent


def test_crash_mid_frame_requeues_and_restarts_with_backoff(tmp_path):
    rig = Rig(tmp_path, backoff_base=2.0)
    rig.sup.start()
    rig.ready("a", "b")
    temp, _ = rig.sup.paths(1, "a")
    open(temp, "wb").write(b"partial")
    rig.emit("a", event="exit", code=-11)  # a crash (SIGSEGV) counts toward the lane's failures
    assert rig.state("a") == BACKOFF and not (tmp_path / ".f1.a.part").exists()
    assert 1 in rig.queue.pending and rig.sup.runs["a"].consecutive_failures == 1
    rig.clock.now = 1.0
    rig.sup.tick()
    assert rig.state("a") == BACKOFF
    rig.clock.now = 2.5
    rig.sup.tick()
    assert rig.state("a") == STARTING and rig.started.count("a") == 2
    rig.ready("a")
    assert rig.current("a") == 3  # frame 1 failed on lane a, so lane a takes another one
    rig.finish("b")
    assert rig.current("b") == 1


def test_frame_failing_on_two_lanes_is_failed_and_job_goes_on(tmp_path):
    rig = Rig(tmp_path, frames=[1, 2, 3])
    rig.sup.start()
    rig.ready("a", "b")
    rig.emit("a", event="frame_error", frame=1, error="CUDA error: illegal address")
    rig.finish("b")
    assert rig.current("b") == 1
    rig.emit("b", event="frame_error", frame=1, error="CUDA error: illegal address")
    assert rig.queue.failed == {1: "CUDA error: illegal address"}
    assert [record["status"] for record in rig.records if record["frame"] == 1] == ["retry", "failed"]
    for lane in ("a", "b"):
        rig.clock.now += 5
        rig.sup.tick()
        rig.ready(lane)
    while not rig.queue.finished:
        lane = next(name for name in ("a", "b") if rig.state(name) == RENDERING)
        rig.finish(lane)
    assert sorted(rig.queue.done) == [2, 3]


def test_three_failures_in_a_row_blocklist_the_lane(tmp_path):
    rig = Rig(tmp_path, frames=range(1, 7), backoff_base=0.0)
    rig.sup.start()
    rig.ready("a", "b")
    for _ in range(3):
        rig.emit("a", event="exit", code=1)
        rig.sup.tick()
        if rig.state("a") == STARTING:
            rig.ready("a")
    run = rig.sup.runs["a"]
    assert run.state == FAILED and run.blocklisted and run.failures == 3
    assert run.to_status()["blocklisted"] is True
    while not rig.queue.finished:
        rig.finish("b")
    assert len(rig.queue.done) == 6 and rig.sup.runs["b"].frames_done == 6


def test_hang_is_killed_and_treated_as_failure(tmp_path):
    rig = Rig(tmp_path, lanes=("a",), frames=[1, 2])
    rig.sup.start()
    rig.ready("a")
    rig.finish("a")
    rig.clock.now = 5
    rig.emit("a", event="progress", frame=2, sample=3, samples=10)
    rig.clock.now = 14
    rig.sup.tick()
    assert rig.state("a") == RENDERING
    rig.clock.now = 16
    rig.sup.tick()
    assert rig.workers["a"].killed and rig.state("a") == BACKOFF
    assert "no progress" in rig.sup.runs["a"].last_error


@pytest.mark.parametrize("engine", ["BLENDER_WORKBENCH", "BLENDER_EEVEE"])
def test_an_engine_without_steady_progress_is_judged_by_the_lanes_own_frame_times(tmp_path, engine):
    rig = Rig(tmp_path, lanes=("a",), frames=[1, 2, 3])  # hang timeout 10 s, first frame 100 s
    rig.sup.start()
    rig.emit("a", event="ready", devices=[{"id": "CPU"}], scene={"camera": True, "engine": engine})
    rig.clock.now = 60  # the first frame (shaders compile, no history yet) gets the first-frame allowance
    rig.sup.tick()
    assert rig.state("a") == RENDERING
    rig.finish("a")  # frame 1 took 60 s on this lane
    rig.clock.now = 60 + 230  # silent for 230 s: within 4 x the lane's slowest frame
    rig.sup.tick()
    assert rig.state("a") == RENDERING and rig.current("a") == 2
    rig.clock.now = 60 + 241
    rig.sup.tick()
    assert rig.state("a") == BACKOFF and "no progress for 241 s" in rig.sup.runs["a"].last_error


def test_first_frame_may_take_long_kernel_compile_on_a_gpu_lane(tmp_path):
    rig = Rig(tmp_path, lanes=("a",), frames=[1], device_type="OPTIX")
    rig.sup.start()
    rig.ready("a")
    rig.emit("a", event="phase", frame=1, phase="compiling GPU kernels")
    assert rig.sup.phase() == "compiling GPU kernels"
    rig.clock.now = 60  # beyond the hang timeout, within the first-frame allowance
    rig.sup.tick()
    assert rig.state("a") == RENDERING
    rig.clock.now = 101
    rig.sup.tick()
    assert rig.state("a") == BACKOFF and "no progress" in rig.sup.runs["a"].last_error


def test_a_cpu_lane_first_frame_gets_only_the_hang_timeout(tmp_path):
    rig = Rig(tmp_path, lanes=("a",), frames=[1])
    rig.sup.start()
    rig.ready("a")
    rig.clock.now = 11
    rig.sup.tick()
    assert rig.state("a") == BACKOFF


def test_opening_a_large_scene_is_not_a_hang(tmp_path):
    rig = Rig(tmp_path, lanes=("a",), frames=[1])
    rig.sup.start()
    rig.clock.now = 99  # silent while the worker loads the file: within the first-frame allowance
    rig.sup.tick()
    assert rig.state("a") == STARTING
    rig.clock.now = 101
    rig.sup.tick()
    assert rig.state("a") == BACKOFF and "during start-up" in rig.sup.runs["a"].last_error


def test_invalid_output_is_not_counted_done(tmp_path):
    rig = Rig(tmp_path, lanes=("a",), frames=[1])
    rig.sup.start()
    rig.ready("a")
    rig.finish("a", valid=False)
    assert 1 not in rig.queue.done and not (tmp_path / "f1.png").exists()
    assert "not valid" in rig.sup.runs["a"].last_error


def test_fatal_start_error_fails_lane_once_without_retry(tmp_path):
    rig = Rig(tmp_path)
    rig.sup.start()
    rig.emit("a", event="fatal", error="CUDA GPU 0000:00:06 is not visible to Cycles; refusing to render on the CPU")
    assert rig.state("a") == FAILED and rig.started.count("a") == 1
    rig.ready("b")
    assert rig.state("b") == RENDERING


def test_messages_from_a_replaced_worker_are_ignored(tmp_path):
    rig = Rig(tmp_path, lanes=("a",), backoff_base=0.0)
    rig.sup.start()
    old_key = rig.workers["a"].key
    rig.ready("a")
    rig.emit("a", event="exit", code=1)
    rig.sup.tick()
    rig.sup.handle(old_key, {"event": "done", "frame": 1, "seconds": 1})
    assert 1 not in rig.queue.done and rig.state("a") == STARTING


def test_no_lane_left_fails_remaining_frames(tmp_path):
    rig = Rig(tmp_path, lanes=("a",), frames=[1, 2])
    rig.sup.start()
    rig.emit("a", event="fatal", error="cannot open file")
    rig.sup.tick()
    assert rig.sup.finished and set(rig.queue.failed) == {1, 2}


def test_eta_from_lane_rates(tmp_path):
    rig = Rig(tmp_path, frames=range(1, 11))
    rig.sup.start()
    rig.ready("a", "b")
    rig.clock.now = 2
    rig.finish("a")
    rig.clock.now = 4
    rig.finish("b")
    # lane a: 2 s/frame, lane b: 4 s/frame -> 0.75 frames/s; 8 frames left
    assert abs(rig.sup.eta_seconds() - 8 / 0.75) < 1e-6
    assert READY not in (rig.state("a"), rig.state("b"))


def test_a_slow_lane_leaves_the_last_frames_to_a_faster_one(tmp_path):
    rig = Rig(tmp_path, lanes=("fast", "slow"), frames=range(1, 13))
    rig.sup.start()
    rig.ready("fast", "slow")
    rig.clock.now = 1.0
    rig.finish("fast")  # fast: 1 s a frame
    rig.clock.now = 10.0
    slow_frame = rig.finish("slow")  # slow: 10 s a frame; 9 frames left, which fast clears in 9 s < 10 s
    assert slow_frame == 2
    assert rig.state("slow") == STOPPED and rig.current("slow") is None
    assert rig.workers["slow"].sent[-1] == {"cmd": "quit"}  # an idle worker would spin a core
    now = 10.0
    while not rig.queue.finished:
        now += 1.0
        rig.clock.now = now
        rig.finish("fast")
    assert rig.sup.runs["slow"].frames_done == 1 and rig.sup.runs["fast"].frames_done == 11
    assert rig.sup.finished


def test_a_slow_lane_still_helps_while_much_work_is_left(tmp_path):
    rig = Rig(tmp_path, lanes=("fast", "slow"), frames=range(1, 41))
    rig.sup.start()
    rig.ready("fast", "slow")
    rig.clock.now = 1.0
    rig.finish("fast")
    rig.clock.now = 10.0
    rig.finish("slow")  # 37 frames pending: fast needs 37 s, more than the slow lane's 10 s
    assert rig.state("slow") == RENDERING


def test_idle_lanes_of_equal_speed_never_all_wait_for_each_other(tmp_path):
    rig = Rig(tmp_path, lanes=("a", "b", "c"), frames=range(1, 7))
    rig.sup.start()
    rig.ready("a", "b", "c")
    while not rig.queue.finished:
        busy = [lane for lane in ("a", "b", "c") if rig.state(lane) == RENDERING]
        assert busy, "every lane is waiting for another: the last frame would never be rendered"
        rig.clock.now += 1.0  # every lane renders a frame a second
        for lane in busy:
            rig.finish(lane)
    assert sorted(rig.queue.done) == [1, 2, 3, 4, 5, 6]


def test_lanes_stopped_for_want_of_work_come_back_when_every_other_lane_fails(tmp_path):
    rig = Rig(tmp_path, lanes=("a", "b"), frames=[1, 2, 3, 4], max_lane_failures=1)
    rig.sup.start()
    rig.ready("a", "b")
    rig.clock.now = 1.0
    assert (rig.finish("a"), rig.finish("b")) == (1, 2)  # a takes 3, b takes 4
    rig.clock.now = 2.0
    rig.finish("b")  # nothing pending and a is on pace: b quits, idle
    assert rig.state("b") == STOPPED and rig.started.count("b") == 1
    rig.emit("a", event="exit", code=-11)  # a crashes on frame 3 and is blocklisted (1 failure allowed)
    assert rig.state("a") == FAILED
    assert rig.state("b") == STARTING and rig.started.count("b") == 2
    rig.ready("b")
    assert rig.current("b") == 3
    rig.finish("b")
    assert sorted(rig.queue.done) == [1, 2, 3, 4] and not rig.queue.failed


def test_an_idle_lane_comes_back_when_the_lane_it_stepped_aside_for_crashes(tmp_path):
    rig = Rig(tmp_path, lanes=("a", "b"), frames=[1, 2, 3, 4])
    rig.sup.start()
    rig.ready("a", "b")
    rig.clock.now = 1.0
    assert (rig.finish("a"), rig.finish("b")) == (1, 2)  # a takes 3, b takes 4
    rig.clock.now = 2.0
    rig.finish("b")  # nothing pending and a is on pace: b quits, idle
    assert rig.state("b") == STOPPED and rig.started.count("b") == 1
    rig.emit("a", event="exit", code=-9)  # a is killed on frame 3: it backs off, not blocklisted
    assert rig.state("a") == BACKOFF
    assert rig.state("b") == STARTING and rig.started.count("b") == 2  # b does not wait for a's restart
    rig.ready("b")
    assert rig.current("b") == 3
    rig.finish("b")
    assert sorted(rig.queue.done) == [1, 2, 3, 4] and not rig.queue.failed


def test_kill_9_mid_frame_is_not_the_cards_fault_but_kills_at_start_up_and_crashes_are(tmp_path):
    rig = Rig(tmp_path, frames=range(1, 10), backoff_base=0.0)
    rig.sup.start()
    rig.ready("a", "b")
    for _ in range(4):  # killed from outside on four frames in a row: retried, never blocklisted
        assert rig.current("a") is not None
        rig.emit("a", event="exit", code=-9)
        rig.sup.tick()
        rig.ready("a")
    run = rig.sup.runs["a"]
    assert run.failures == 4 and run.consecutive_failures == 0 and not run.blocklisted
    rig.emit("a", event="exit", code=-9)  # mid-frame again; then three times while starting (no frame):
    rig.sup.tick()
    for _ in range(3):  # those count, and the lane is blocklisted as before
        assert run.state == STARTING and run.frame is None and not run.blocklisted
        rig.emit("a", event="exit", code=-9)
        rig.sup.tick()
    assert run.state == FAILED and run.blocklisted and run.consecutive_failures == 3


def test_a_fast_idle_lane_backs_up_the_last_frame_of_a_slow_lane(tmp_path):
    rig = Rig(tmp_path, lanes=("gpu", "cpu"), frames=[1, 2, 3, 4])
    rig.sup.start()
    rig.ready("gpu", "cpu")  # gpu takes 1, cpu takes 2 (its first frame: pace unknown)
    for now, expected in ((1.0, 1), (2.0, 3), (3.0, 4)):
        rig.clock.now = now
        assert rig.finish("gpu") == expected
    # nothing pending; cpu has been on frame 2 for 3 s, twice the gpu's pace: gpu renders a second copy
    assert rig.current("gpu") == 2 and rig.queue.backups == {2: "gpu"}
    rig.clock.now = 4.0
    rig.finish("gpu")
    assert rig.queue.finished and sorted(rig.queue.done) == [1, 2, 3, 4]
    assert rig.workers["cpu"].killed and rig.state("cpu") == STOPPED
    assert not list(tmp_path.glob(".*.part"))
    assert [r["backup"] for r in rig.records if r["frame"] == 2] == [True]


def test_the_slow_copy_finishing_first_still_wins(tmp_path):
    rig = Rig(tmp_path, lanes=("gpu", "cpu"), frames=[1, 2])
    rig.sup.start()
    rig.ready("gpu", "cpu")
    rig.clock.now = 1.0
    rig.finish("gpu")
    rig.clock.now = 3.0
    rig.sup.tick()
    assert rig.queue.backups == {2: "gpu"}
    rig.finish("cpu")  # the original copy arrives first
    assert rig.queue.finished and rig.workers["gpu"].killed and rig.sup.runs["cpu"].frames_done == 1


def test_a_failing_backup_does_not_requeue_the_frame(tmp_path):
    rig = Rig(tmp_path, lanes=("gpu", "cpu"), frames=[1, 2])
    rig.sup.start()
    rig.ready("gpu", "cpu")
    rig.clock.now = 1.0
    rig.finish("gpu")
    rig.clock.now = 3.0
    rig.sup.tick()
    rig.emit("gpu", event="frame_error", frame=2, error="CUDA error")
    assert rig.queue.pending == [] and rig.queue.in_flight == {2: "cpu"} and not rig.queue.backups
    rig.finish("cpu")
    assert sorted(rig.queue.done) == [1, 2]


def test_a_worker_that_dies_before_ready_says_why(tmp_path):
    rig = Rig(tmp_path, lanes=("a",), frames=[1])
    rig.sup.start()
    rig.emit("a", event="exit", code=1, detail="Error: Failed to read blend file 'x.blend', not a blend file")
    assert rig.sup.runs["a"].last_error == (
        "worker exited with code 1: Error: Failed to read blend file 'x.blend', not a blend file"
    )


def test_last_error_line_reads_the_latest_run_of_a_log(tmp_path):
    from dispatcher.process import last_error_line

    log = tmp_path / "lane.log"
    log.write_text(
        "=== start blender -b old\nError: old problem\n=== exit 1\n"
        "=== start blender -b new\nBlender 3.4.1\nRead blend: x.blend\nError: Failed to read blend file\nBlender quit\n"
        "=== exit 1\n"
    )
    assert last_error_line(str(log)) == "Error: Failed to read blend file"
    log.write_text("=== start python worker.py\nSegmentation fault\n=== exit -11\n")
    assert last_error_line(str(log)) == "Segmentation fault"
    assert last_error_line(str(tmp_path / "missing.log")) is None
