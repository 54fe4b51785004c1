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
        ("1,2,1", []),  # a card named twice: CUDA shows none
        ("0,,1", [0]),  # an empty entry ends the list
        ("+1,01", []),  # both are card 1, read like strtol: named twice
        ("GPU-1a1b,0", [1]),  # switching from UUIDs to indices ends the list
        ("0, 1", [0, 1]),
        ("GPU-2a2b0000-1111-2222", [2]),
        ("GPU-2a2b0000-1111-2222 ", []),  # a trailing space spoils a UUID
        ("GPU-1a1b", [1]),  # a unique UUID prefix is enough
        ("1a1b0000-1111-2222,0", [1, 0]),  # without GPU- it is an index: strtol reads the leading 1
        ("gpu-1a1b", []),  # the prefix is case-sensitive, the hex digits are not
        ("GPU-1A1B", [1]),
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
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-2a2b,GPU-0a0b")
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


def test_every_value_tried_on_real_h100s_gives_what_the_cuda_driver_showed():
    """docs/gpu-2026-11-25/cuda_visible_devices.json: values tried against the CUDA driver on 2x H100."""
    import json
    from pathlib import Path

    truth = json.loads((Path(__file__).parent.parent / "docs/gpu-2026-11-25/cuda_visible_devices.json").read_text())
    gpus = [Gpu(int(index), "NVIDIA H100 80GB HBM3", uuid, pci, 81559, 81000) for index, uuid, pci in truth["nvml"]]
    assert len(truth["cases"]) >= 30
    for case in truth["cases"]:
        chosen = parse_cuda_visible(case["value"], gpus)
        assert [gpu.uuid for gpu in (gpus if chosen is None else chosen)] == case["uuids"], case["value"]
