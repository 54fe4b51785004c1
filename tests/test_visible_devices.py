"""CUDA_VISIBLE_DEVICES read as CUDA reads it, intersected with NVML's list (fake device lists)."""

from __future__ import annotations

import pytest

from dispatcher.devices import DeviceReport, Gpu
from dispatcher.lanes import plan_lanes
from dispatcher.spec import JobSpec, SpecError
from dispatcher.visible import apply_visibility, parse_cuda_visible


def fake_report(count: int = 3) -> DeviceReport:
    gpus = [
        Gpu(index, "NVIDIA H100", f"GPU-{index}a{index}b0000-1111-2222", f"00000000:{0x18 + index:02X}:00.0", 81559,
            80000, compute_capability=(9, 0))
        for index in range(count)
    ]
    return DeviceReport(gpus=gpus, cpu={"usable_cores": 16, "logical_cores": 16})


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", []),
        ("0,2", [0, 2]),
        ("2,0", [2, 0]),
        ("1", [1]),
        ("0,7,1", [0]),  # stops at the first index that is not there
        ("1,-1,2", [1]),  # a negative entry ends the list
        ("1,1,2", [1]),  # a repeat ends the list
        ("0, 1", [0, 1]),
        ("GPU-2a2b0000-1111-2222", [2]),
        ("GPU-1a1b", [1]),  # a unique UUID prefix is enough
        ("1a1b0000-1111-2222,0", [1, 0]),  # CUDA accepts the UUID without its GPU- prefix
        ("GPU-,0", []),  # GPU- alone is a prefix of every card: ambiguous, so nothing
        ("MIG-abc,0", []),
        ("foo,0", []),
    ],
)
def test_cuda_visible_devices_is_read_as_cuda_reads_it(value, expected):
    report = fake_report()
    chosen = parse_cuda_visible(value, report.gpus)
    assert (None if chosen is None else [gpu.index for gpu in chosen]) == expected


def test_hidden_cards_are_listed_with_the_reason_and_idempotent():
    narrowed = apply_visibility(fake_report(), {"CUDA_VISIBLE_DEVICES": "1"})
    assert [gpu.index for gpu in narrowed.gpus] == [1]
    assert [card["index"] for card in narrowed.hidden] == [0, 2]
    assert narrowed.hidden[0]["reason"] == "CUDA_VISIBLE_DEVICES='1'"
    assert apply_visibility(narrowed, {}) is narrowed  # already narrowed: unchanged
    assert narrowed.to_dict()["hidden"][1]["uuid"].startswith("GPU-2a2b")
    empty = apply_visibility(fake_report(), {"CUDA_VISIBLE_DEVICES": ""})
    assert empty.gpus == [] and "every GPU is hidden" in empty.reason


def test_restricted_cuda_visible_devices_gives_lanes_only_on_allowed_cards(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-2a2b,0")
    lanes = plan_lanes(JobSpec(blend="x.blend", output_dir="out"), fake_report(), "OPTIX")
    assert sorted(lane.name for lane in lanes) == ["gpu0", "gpu2"]
    assert {lane.env["CUDA_VISIBLE_DEVICES"] for lane in lanes} == {fake_report().gpus[i].uuid for i in (0, 2)}
    with pytest.raises(SpecError, match="GPU '1' is hidden from this process"):
        plan_lanes(JobSpec(blend="x.blend", output_dir="out", gpus=["1"]), fake_report(), "OPTIX")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with pytest.raises(SpecError, match="hidden by CUDA_VISIBLE_DEVICES"):
        plan_lanes(JobSpec(blend="x.blend", output_dir="out"), fake_report(), "OPTIX")


def test_hip_and_oneapi_lanes_without_nvml_cards_keep_the_users_selection(monkeypatch):
    monkeypatch.setenv("HIP_VISIBLE_DEVICES", "1")
    report = DeviceReport(reason="no NVML", cpu={"usable_cores": 4})
    lanes = plan_lanes(JobSpec(blend="x.blend", output_dir="out"), report, "HIP")
    assert [lane.name for lane in lanes] == ["gpu0"] and "HIP_VISIBLE_DEVICES" not in lanes[0].env
