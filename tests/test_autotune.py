"""Autotune rules (pure function): what it picks for static / deforming scenes, memory limits, few frames."""

import pytest

from dispatcher import autotune
from dispatcher.devices import Gpu

BIG_HOST = {
    "logical_cores": 64,
    "usable_cores": 64,
    "memory_total_mb": 512_000,
    "memory_available_mb": 480_000,
}


def gpus(count=4, free_mb=140_000, total_mb=143_000):
    return [
        Gpu(index, "NVIDIA H200", f"GPU-{index:04d}", f"00000000:{index + 1:02x}:00.0", total_mb, free_mb)
        for index in range(count)
    ]


def scene(**changes):
    info = {
        "frame_start": 1,
        "frame_end": 64,
        "frame_step": 1,
        "fps": 24.0,
        "resolution": [1280, 720],
        "resolution_percentage": 100,
        "engine": "CYCLES",
        "samples": 128,
        "camera": True,
        "file_format": "PNG",
        "file_extension": ".png",
        "triangles": 1_000_000,
        "deforming": False,
        "objects": 20,
        "estimated_vram_mb": 1_500,
    }
    info.update(changes)
    return info


def check_shape(choice):
    assert choice["layout"] in ("per-card", "combined", "groups")
    assert choice["workers_per_gpu"] >= 1 and choice["gpus_per_worker"] >= 1
    assert isinstance(choice["persistent_data"], bool)
    assert choice["reason"] and "\n" not in choice["reason"]


def test_static_scene_per_card_persistent():
    choice = autotune.choose(scene(), gpus(), BIG_HOST)
    check_shape(choice)
    assert (choice["layout"], choice["workers_per_gpu"], choice["gpus_per_worker"]) == ("per-card", 1, 1)
    assert choice["persistent_data"] is True
    assert "static" in choice["reason"]


def test_deforming_keeps_one_persistent_worker_per_card_as_measured():
    # H200, 2026-11-24: deforming scene, 16 frames: 1 persistent worker 19.5 s, 2 workers without 20.4 s.
    choice = autotune.choose(scene(deforming=True), gpus(), BIG_HOST)
    check_shape(choice)
    assert (choice["layout"], choice["workers_per_gpu"], choice["persistent_data"]) == ("per-card", 1, True)
    assert "deforming" in choice["reason"]


def test_measured_two_workers_win_when_they_are_faster():
    timed = {"per-card/w1/g1/pd": 1.40, "per-card/w2/g1/nopd": 0.90}
    choice = autotune.choose(scene(deforming=True), gpus(), BIG_HOST, measurements=timed)
    assert (choice["workers_per_gpu"], choice["persistent_data"]) == (2, False)
    assert "fastest measured" in choice["reason"]


def test_vram_estimate_from_triangles_when_missing():
    info = scene(estimated_vram_mb=None, triangles=2_000_000, resolution=[1920, 1080])
    assert autotune.vram_estimate_mb(info) == pytest.approx(600 + 800 + 126, abs=2)
    small_cards = gpus(free_mb=2_000, total_mb=8_000)
    choice = autotune.choose(dict(info, deforming=True), small_cards, BIG_HOST)
    assert choice["workers_per_gpu"] == 1


def test_scene_too_big_for_the_card_says_so():
    choice = autotune.choose(scene(estimated_vram_mb=200_000), gpus(), BIG_HOST)
    assert choice["layout"] == "per-card" and "may not fit" in choice["reason"]


def test_fewer_frames_than_gpus_shares_cards():
    one = autotune.choose(scene(frame_start=5, frame_end=5), gpus(4), BIG_HOST)
    assert (one["layout"], one["gpus_per_worker"]) == ("combined", 4)
    two = autotune.choose(scene(frame_end=2), gpus(4), BIG_HOST)
    assert (two["layout"], two["gpus_per_worker"]) == ("groups", 2)
    three = autotune.choose(scene(frame_end=3), gpus(8), BIG_HOST)
    assert (three["layout"], three["gpus_per_worker"]) == ("groups", 2)


def test_small_host_memory_groups_gpus():
    host = dict(BIG_HOST, memory_available_mb=8_000)  # ~1.9 GB a worker -> 3 workers for 8 GPUs
    choice = autotune.choose(scene(), gpus(8), host)
    assert choice["layout"] == "groups" and choice["gpus_per_worker"] == 3
    assert "host memory" in choice["reason"]


def test_no_gpu_uses_cpu_lanes():
    small = autotune.choose(scene(), [], {"logical_cores": 2, "usable_cores": 2, "memory_available_mb": 4000})
    assert small["device"] == "CPU" and small["cpu_lanes"] == 1 and small["threads"] == 2
    assert small["reason"].startswith("no GPU")
    large = autotune.choose(scene(deforming=True), [], {"usable_cores": 32, "memory_available_mb": 64_000})
    assert large["cpu_lanes"] == 4 and large["threads"] == 8 and large["persistent_data"] is False


def test_measurements_pick_the_fastest_feasible():
    measured = {
        autotune.config_key("per-card", 1, 1, True): 2.0,
        autotune.config_key("per-card", 2, 1, False): 1.5,
        autotune.config_key("combined", 1, 4, True): 6.0,
    }
    choice = autotune.choose(scene(), gpus(), BIG_HOST, measured)
    assert (choice["workers_per_gpu"], choice["persistent_data"]) == (2, False)
    assert "fastest measured" in choice["reason"]


def test_measurements_keep_rule_choice_within_five_percent():
    measured = {"per-card/w1/g1/pd": {"seconds_per_frame": 1.04}, "per-card/w2/g1/nopd": 1.0, "junk": 0.1}
    choice = autotune.choose(scene(), gpus(), BIG_HOST, measured)
    assert choice["key"] == "per-card/w1/g1/pd"
    assert "within 5 %" in choice["reason"]


def test_measurements_ignore_configs_that_do_not_fit():
    measured = {"per-card/w2/g1/nopd": 0.5, "per-card/w1/g1/nopd": 1.0}
    choice = autotune.choose(scene(deforming=True, estimated_vram_mb=70_000), gpus(), BIG_HOST, measured)
    assert choice["workers_per_gpu"] == 1


def test_keys_round_trip():
    key = autotune.config_key("groups", 1, 2, False)
    assert key == "groups/w1/g2/nopd"
    assert autotune.parse_key(key) == {
        "layout": "groups",
        "workers_per_gpu": 1,
        "gpus_per_worker": 2,
        "persistent_data": False,
    }
    with pytest.raises(ValueError):
        autotune.parse_key("per-card")


def test_candidates_start_with_the_choice_and_fit():
    options = autotune.candidates(scene(deforming=True), gpus(), BIG_HOST)
    keys = [option["key"] for option in options]
    assert keys[0] == "per-card/w1/g1/pd"
    assert "per-card/w2/g1/nopd" in keys and "combined/w1/g4/pd" in keys
    assert len(keys) == len(set(keys))
