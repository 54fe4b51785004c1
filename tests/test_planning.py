"""Device mapping, lane layouts and job-spec validation, without Blender."""

import pytest

from dispatcher.devices import DeviceReport, Gpu, best_device_type, cycles_ids_for_gpu, cycles_pci_address, detect_gpus
from dispatcher.lanes import plan_lanes
from dispatcher.spec import JobSpec, SpecError


def fake_gpus(count: int) -> DeviceReport:
    gpus = [
        Gpu(index, "NVIDIA H200", f"GPU-{index:08x}-aaaa", f"00000000:{0x18 + index:02X}:00.0", 143771, 140000,
            compute_capability=(9, 0))
        for index in range(count)
    ]  # fmt: skip
    return DeviceReport(gpus=gpus, cpu={"usable_cores": 32, "logical_cores": 32})


def spec(**overrides) -> JobSpec:
    return JobSpec(blend="/tmp/x.blend", output_dir="/tmp/out", **overrides).validate()


def test_nvml_bus_id_maps_to_cycles_ids():
    assert cycles_pci_address("00000000:00:06.0") == "0000:00:06"
    assert cycles_pci_address("00000000:1A:00.0") == "0000:1a:00"
    cycles = [
        "CPU",
        "CUDA_NVIDIA H200_0000:00:06",
        "CUDA_NVIDIA H200_0000:00:06_OptiX",
        "CUDA_NVIDIA H200_0000:00:07",
        "CUDA_NVIDIA H200_0000:00:07_OptiX",
    ]
    assert cycles_ids_for_gpu("00000000:00:06.0", cycles) == cycles[1:3]
    assert cycles_ids_for_gpu("00000000:00:08.0", cycles) == []


def test_detect_gpus_never_raises_without_nvml():
    report = detect_gpus()
    assert isinstance(report.gpus, list)
    if not report.gpus:
        assert report.reason
    assert report.cpu["logical_cores"] >= 1


def test_per_card_lanes_are_pinned_by_uuid_before_start():
    lanes = plan_lanes(spec(), fake_gpus(4), "OPTIX")
    assert [lane.name for lane in lanes] == ["gpu0", "gpu1", "gpu2", "gpu3"]
    for index, lane in enumerate(lanes):
        assert lane.env["CUDA_VISIBLE_DEVICES"] == f"GPU-{index:08x}-aaaa"
        assert lane.env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
        assert lane.pci_addresses == [f"0000:{0x18 + index:02x}:00"]
        assert lane.threads == 8


def test_combined_groups_and_workers_per_gpu():
    report = fake_gpus(4)
    combined = plan_lanes(spec(layout="combined"), report, "CUDA")
    assert len(combined) == 1 and len(combined[0].gpus) == 4
    assert combined[0].env["CUDA_VISIBLE_DEVICES"].count("GPU-") == 4
    groups = plan_lanes(spec(layout="groups", gpus_per_worker=2), report, "CUDA")
    assert [len(lane.gpus) for lane in groups] == [2, 2]
    doubled = plan_lanes(spec(workers_per_gpu=2), report, "OPTIX")
    assert [lane.name for lane in doubled][:2] == ["gpu0.0", "gpu0.1"] and len(doubled) == 8


def test_cpu_lane_beside_gpus_cannot_see_a_gpu():
    lanes = plan_lanes(spec(cpu_lane=True), fake_gpus(2), "OPTIX")
    cpu = lanes[-1]
    assert cpu.device_type == "CPU" and cpu.env["CUDA_VISIBLE_DEVICES"] == ""
    assert sum(lane.threads for lane in lanes) <= 32


def test_gpu_selection_by_index_and_uuid_and_missing_gpu():
    report = fake_gpus(2)
    assert [lane.gpus[0].index for lane in plan_lanes(spec(gpus=["1"]), report, "CUDA")] == [1]
    assert len(plan_lanes(spec(gpus=["GPU-00000000-aaaa"]), report, "CUDA")) == 1
    with pytest.raises(SpecError, match="not on this machine"):
        plan_lanes(spec(gpus=["3"]), report, "CUDA")
    with pytest.raises(SpecError, match="no NVIDIA GPU"):
        plan_lanes(spec(), DeviceReport(reason="NVML missing", cpu={"usable_cores": 2}), "CUDA")


def test_cpu_only_machine_gets_cpu_lanes():
    report = DeviceReport(reason="no NVML", cpu={"usable_cores": 2})
    assert best_device_type(report) == "CPU"
    lanes = plan_lanes(spec(cpu_lanes=2), report, "CPU")
    assert [lane.device_type for lane in lanes] == ["CPU", "CPU"] and all(lane.threads == 1 for lane in lanes)


def test_best_device_type_prefers_optix_on_nvidia():
    assert best_device_type(fake_gpus(1)) == "OPTIX"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"device_type": "VULKAN"}, "unknown device type"),
        ({"frames": "10-1"}, "reversed"),
        ({"frames": ""}, "empty"),
        ({"file_pattern": "movie_####.mp4"}, "movie"),
        ({"file_format": "FFMPEG"}, "not an image format"),
        ({"layout": "diagonal"}, "unknown layout"),
        ({"workers_per_gpu": 0}, "1 or more"),
    ],
)
def test_spec_validation_messages(overrides, message):
    with pytest.raises(SpecError, match=message):
        JobSpec(blend="x.blend", output_dir="out", **overrides).validate()


def test_spec_round_trips_through_json(tmp_path):
    original = spec(frames="1-9x2", resolution=(64, 32), gpus=["0"])
    original.save(str(tmp_path / "spec.json"))
    assert JobSpec.load(str(tmp_path / "spec.json")) == original


def test_per_card_overrides_set_device_type_and_workers_for_one_card():
    report = fake_gpus(3)
    lanes = plan_lanes(spec(per_gpu={"GPU-00000001-aaaa": {"device_type": "CUDA", "workers": 2}}), report, "OPTIX")
    assert [(lane.name, lane.device_type) for lane in lanes] == [
        ("gpu0", "OPTIX"), ("gpu1.0", "CUDA"), ("gpu1.1", "CUDA"), ("gpu2", "OPTIX"),
    ]  # fmt: skip
    assert lanes[1].env["CUDA_VISIBLE_DEVICES"] == lanes[2].env["CUDA_VISIBLE_DEVICES"] == "GPU-00000001-aaaa"
    by_index = plan_lanes(spec(per_gpu={"2": {"workers": 3}}), report, "OPTIX")
    assert [lane.name for lane in by_index][-3:] == ["gpu2.0", "gpu2.1", "gpu2.2"]
    with pytest.raises(SpecError, match="not a GPU backend"):
        spec(per_gpu={"0": {"device_type": "CPU"}})
