"""The panel's sentences (bpy-free): headlines read once, each error once with its hint, lane bars."""

from dataclasses import replace

from dispatcher.error_hints import HINTS, clean, distinct, hint
from dispatcher.job_text import autotune_line, job_view, lane_view, lanes_line, wrap
from dispatcher.status import JobStatus, LaneStatus

OIDN = "cpu0: Error: Failed to denoise, build has no OpenImageDenoise support"


def status(state="running", done=14, total=24, failed=None, lanes=(), **extra) -> JobStatus:
    return JobStatus.from_json({
        "state": state, "phase": extra.pop("phase", state), "elapsed": extra.pop("elapsed", 62.0),
        "eta_seconds": extra.pop("eta", 14.0), "failed_frames": failed or {}, "message": extra.pop("message", None),
        "lanes": [lane.to_json() for lane in lanes],
        "frames": {"total": total, "done": done, "skipped": extra.pop("skipped", 0)}, **extra})


def lane(name, state="stopped", frames_done=0, last_error=None, **extra) -> LaneStatus:
    return LaneStatus.from_json({"name": name, "state": state, "frames_done": frames_done, "last_error": last_error,
                                 **extra})


def said(status, **flags) -> tuple[str, str]:
    view = job_view(status, **{"active": False, **flags})
    return view.kind, view.headline


def test_headlines_of_each_state():
    assert said(status(), active=True) == ("running", "Rendering — 14/24 frames, 0:14 left")
    assert said(status(state="done", done=24)) == ("done", "Done — 24 frames in 1:02 (23 frames/min)")
    assert said(status(state="done", done=24, skipped=6)) == (
        "done", "Done — 18 frames in 1:02 (17 frames/min): 6 more were already there and kept")
    assert said(status(state="cancelled", done=4)) == ("cancelled", "Cancelled — 4/24 frames done")
    assert said(None, active=True) == ("starting", "Starting — launching the workers")
    assert said(status(), active=True, cancelling=True)[0] == "cancelling"
    kind, text = said(status())  # says running, but nobody runs it
    assert kind == "stalled" and "press Resume" in text
    assert said(status(state="done", done=24), encoding=True) == ("encoding", "Encoding video — 24 frames")
    assert said(status(state="done", done=1, total=1)) == ("done", "Done — 1 frame in 1:02")
    for state in ("done", "failed", "cancelled"):
        bar = job_view(status(state=state), active=False).bar
        assert bar.split(" — ")[0].lower() not in bar.split(" — ")[1].lower()  # never "Done: done"
        assert len(bar) <= 42  # fits the progress bar at the default Properties width


def test_every_card_failed_frame_gets_the_hint_once():
    lanes = [lane("gpu0", last_error=OIDN), lane("gpu1", last_error="Error: " + OIDN.split("Error: ")[1])]
    job = status(state="failed", done=6, failed={"7": OIDN}, lanes=lanes, message="1 frame failed")
    assert said(job)[1] == ("Stopped — frame 7 failed on every card: this Blender has no OpenImageDenoise; "
                            "turn off Denoising in Render Properties › Sampling")
    view = job_view(job, active=False)
    oidn = [p for p in view.problems if "OpenImageDenoise" in p.text]
    assert len(oidn) == 1 and oidn[0].frames == ["7"] and oidn[0].hint
    assert oidn[0].text == "Failed to denoise, build has no OpenImageDenoise support"


def test_the_same_error_from_a_frame_its_lane_and_the_summary_is_shown_once():
    once = "Failed to denoise, build has no OpenImageDenoise support"
    doubled = f"Error: {once} Error: {once}"  # as Blender's exception text arrives from a worker
    job = status(state="failed", done=0, total=1, failed={"1": doubled},
                 lanes=[lane("cpu0", last_error=doubled, blocklisted=True)],
                 message=f"1 frame(s) failed; frame 1: {doubled}")
    view = job_view(job, active=False)
    assert [(p.text, p.frames) for p in view.problems] == [
        ("Failed to denoise, build has no OpenImageDenoise support", ["1"])]
    assert view.headline == ("Stopped — frame 1 failed: this Blender has no OpenImageDenoise; "
                             "turn off Denoising in Render Properties › Sampling")


def test_clean_and_distinct():
    assert clean("gpu1: RuntimeError: out of memory") == "out of memory"
    assert clean("CUDA error: illegal address CUDA error: illegal address") == "CUDA error: illegal address"
    assert distinct([OIDN, "gpu1: " + OIDN.split(": ", 1)[1], None, "", "other"]) == [
        "Failed to denoise, build has no OpenImageDenoise support", "other"]


def test_known_errors_have_hints_and_unknown_do_not():
    assert "Simplify" in hint("CUDA error: Out of memory in cuMemAlloc")
    assert "NVIDIA driver" in hint("NVML Shared Library Not Found")
    assert "Output Folder" in hint("[Errno 28] No space left on device")
    assert hint("something nobody has seen") is None and hint(None) is None
    assert all(len(text) < 110 for _, text in HINTS)  # a hint fits two lines of the panel


def test_stopped_lane_bar_shows_its_share_not_full():
    assert lane_view(lane("gpu0", frames_done=6), 24).factor == 0.25
    assert lane_view(lane("gpu0", frames_done=6), 24).text == "stopped · 6 frames"
    view = lane_view(lane("gpu1", blocklisted=True, failures=3, frames_done=1), 24)
    assert view.alert and view.text == "stopped after 3 failures · 1 frame"
    rendering = lane_view(lane("gpu0", state="rendering", frame=12, sample=128, samples=512), 24)
    assert (rendering.factor, rendering.text) == (0.25, "frame 12 · 128/512 samples")


def test_a_frame_without_sample_counts_shows_its_time_against_the_usual():
    rendering = lane("cpu0", state="rendering", frame=5, sample=0, samples=512, frame_started_at=100.0)
    usual = replace(rendering, seconds_per_frame=13.0)
    assert lane_view(usual, 24, now=105.0).text == "frame 5 · 0:05 of ~0:13"
    assert round(lane_view(usual, 24, now=105.0).factor, 2) == 0.38
    assert lane_view(rendering, 24, now=105.0).text == "frame 5 · 0:05"  # the lane's first frame
    cpu = replace(rendering, sample=1, samples=64, seconds_per_frame=10.0)  # as Cycles on the CPU reports
    assert lane_view(cpu, 24, now=105.0).text == "frame 5 · 0:05 of ~0:10"


def test_lanes_line():
    one = [lane_view(lane("gpu0", state="rendering", frame=3, sample=8, samples=32), 24)]
    assert lanes_line(one) == "gpu0: frame 3 · 8/32 samples"
    many = one + [lane_view(lane("gpu1", state="starting", phase="compiling GPU kernels"), 24),
                  lane_view(lane("gpu2", frames_done=2), 24)]
    assert lanes_line(many) == "1 of 3 lanes rendering, 1 compiling GPU kernels"


def test_autotune_line_and_wrap():
    choice = {"layout": "groups", "gpus_per_worker": 4,
              "reason": "groups: only 1 frame for 4 GPUs, so each frame gets 4 GPUs; measured 1.00 s/frame"}
    expected = "Automatic — groups: only 1 frame for 4 GPUs, so each frame gets 4 GPUs"
    assert autotune_line(status(autotune=choice)) == expected
    assert autotune_line(status(autotune=None)) == ""
    lines = wrap("the output folder /very/long/path/that/does/not/fit cannot be written", 20)
    assert all(len(line) <= 20 for line in lines) and " ".join(lines).startswith("the output folder")


def test_a_still_in_automatic_mode_says_it_uses_every_card():
    from dispatcher import autotune
    from dispatcher.devices import Gpu

    cards = [Gpu(i, "NVIDIA H200", f"GPU-{i}", f"00000000:{i + 1:02x}:00.0", 143_000, 140_000) for i in range(4)]
    host = {"logical_cores": 64, "usable_cores": 64, "memory_total_mb": 512_000, "memory_available_mb": 480_000}
    still = {"frame_start": 7, "frame_end": 7, "triangles": 0, "provisional": True}  # as the runner asks at start
    choice = autotune.choose(still, cards, host)
    assert (choice["layout"], choice["gpus_per_worker"]) == ("combined", 4)
    line = job_view(status(done=0, total=1, autotune=choice), active=True).detail
    assert line.startswith("Automatic — ") and "4 GPUs" in line and ";" not in line


def test_a_queued_job_names_the_job_it_waits_for():
    queued = status(state="queued", phase="Queued behind shot-2 (2 of 2 GPUs busy)", done=0)
    view = job_view(queued, active=True)
    assert (view.kind, view.bar, view.note) == ("queued", "Queued behind shot-2", "2 of 2 GPUs busy")
