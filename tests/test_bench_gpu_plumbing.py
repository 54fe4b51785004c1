"""The --gpu path without a GPU: a fake reference runner records which GPUs each process was pinned to."""

import json
import os
import sys
import textwrap

import pytest

from dispatcher import bench
from dispatcher.bench import approaches
from dispatcher.bench.approaches import Settings
from dispatcher.devices import DeviceReport, Gpu

FAKE_RUNNER = textwrap.dedent(
    """
    import json, os, sys, time
    args = sys.argv[sys.argv.index("--") + 1:]
    get = lambda flag: args[args.index(flag) + 1] if flag in args else None
    first, _, last = get("--frames").partition("-")
    with open(get("--timing"), "a") as timing:
        def note(event, frame):
            timing.write(json.dumps({"event": event, "frame": frame, "t": time.time()}) + "\\n")
        note("loaded", int(first))
        for frame in range(int(first), int(last or first) + 1):
            for event in ("pre", "post", "write"):
                note(event, frame)
    print(json.dumps({"visible": os.environ.get("CUDA_VISIBLE_DEVICES"), "argv": args}))
    """
)


def gpu_settings(tmp_path, lanes=3, frames=7):
    return Settings(
        device="OPTIX",
        lanes=lanes,
        threads=0,
        total_threads=16,
        frames=frames,
        resolution="32x32",
        samples=4,
        triangles=1000,
        workers_per_gpu=2,
        program=sys.executable,
        out=str(tmp_path),
        gpu_uuids=[f"GPU-{index}" for index in range(lanes)],
    )


@pytest.fixture
def fake_runner(tmp_path, monkeypatch):
    script = tmp_path / "fake_run.py"
    script.write_text(FAKE_RUNNER)
    monkeypatch.setattr(approaches, "RUN_SCRIPT", str(script))
    return script


def pinned(folder):
    seen = {}
    for name in sorted(os.listdir(folder / "logs")):
        for line in (folder / "logs" / name).read_text().splitlines():
            if line.startswith("{"):
                message = json.loads(line)
                seen[name] = message
    return seen


def test_static_chunks_pin_one_gpu_each(tmp_path, fake_runner):
    run = approaches.run_approach(gpu_settings(tmp_path), "static-chunks", "static", "scene.blend")
    assert run.ok and run.job().frames_done == 7
    logs = pinned(tmp_path / "static" / "static-chunks")
    assert {name: message["visible"] for name, message in logs.items()} == {
        "gpu0.log": "GPU-0",
        "gpu1.log": "GPU-1",
        "gpu2.log": "GPU-2",
    }
    chunks = sorted(message["argv"][message["argv"].index("--frames") + 1] for message in logs.values())
    assert chunks == ["1-3", "4-6", "7"]
    assert all("--device" in message["argv"] and "OPTIX" in message["argv"] for message in logs.values())


def test_combined_sees_every_gpu_and_sets_persistent_data(tmp_path, fake_runner):
    run = approaches.run_approach(gpu_settings(tmp_path), "combined-pd", "static", "scene.blend")
    assert run.ok and run.lanes == ["all"]
    (message,) = pinned(tmp_path / "static" / "combined-pd").values()
    assert message["visible"] == "GPU-0,GPU-1,GPU-2"
    assert message["argv"][message["argv"].index("--persistent-data") + 1] == "1"


def test_fresh_per_frame_one_process_per_frame_on_slot_gpus(tmp_path, fake_runner):
    run = approaches.run_approach(gpu_settings(tmp_path, lanes=2, frames=5), "fresh-per-frame", "deforming", "b")
    assert run.ok and run.job().frames_done == 5
    logs = pinned(tmp_path / "deforming" / "fresh-per-frame")
    assert len(logs) == 5
    assert {message["visible"] for message in logs.values()} == {"GPU-0", "GPU-1"}
    lanes = {record["lane"] for record in run.records}
    assert lanes == {"gpu0", "gpu1"}


def test_make_settings_on_a_gpu_machine(tmp_path, monkeypatch):
    gpus = [
        Gpu(
            index,
            "NVIDIA H200",
            f"GPU-{index}",
            f"00000000:{index + 1:02x}:00.0",
            143_000,
            140_000,
            compute_capability=(9, 0),
        )
        for index in range(4)
    ]
    monkeypatch.setattr("dispatcher.devices.detect_gpus", lambda: DeviceReport(gpus=gpus, cpu={"usable_cores": 64}))
    monkeypatch.setattr("dispatcher.devices.cpu_info", lambda: {"usable_cores": 64})
    parser = __import__("argparse").ArgumentParser()
    bench.add_arguments(parser)
    settings = bench.make_settings(parser.parse_args(["--gpu", "--out", str(tmp_path), "--blender", sys.executable]))
    assert (settings.device, settings.lanes, settings.frames) == ("OPTIX", 4, 64)
    assert (settings.resolution, settings.samples) == ("1280x720", 128) and settings.triangles >= 500_000
    assert settings.label == "4 x NVIDIA H200 (OPTIX)"
    eight = bench.make_settings(parser.parse_args(["--gpu", "--frames", "16", "--gpus", "0,1", "--out", str(tmp_path)]))
    assert (eight.lanes, eight.frames, eight.gpu_uuids) == (2, 16, ["GPU-0", "GPU-1"])
