"""The GPU queue across jobs on fake cards: the dispatcher plans, pins and leases GPU lanes from a fake device
list; each worker really renders with bpy, on the CPU (a fake card has nothing for Cycles to use)."""

from __future__ import annotations

import json
import os
import threading
import time

from farmtest import run_cli, wait_for, worker_processes

from dispatcher import jobs
from dispatcher.devices import DeviceReport, Gpu
from dispatcher.images import check_image
from dispatcher.process import LocalFactory
from dispatcher.runner import run_job
from dispatcher.spec import JobSpec


def fake_cards(count: int) -> DeviceReport:
    gpus = [
        Gpu(index, "NVIDIA Fake", f"GPU-fa4e{index:04d}-0000-4000-8000-{index:012d}",
            f"00000000:{0x40 + index:02X}:00.0", 81559, 80000, compute_capability=(9, 0))
        for index in range(count)
    ]
    return DeviceReport(gpus=gpus, cpu={"usable_cores": 2, "logical_cores": 2})


class CardsOnCpu(LocalFactory):
    """Starts each GPU lane's worker on the CPU and notes when, and with which pinning, it started and ended."""

    def __init__(self, job: str, log: list):
        self.job, self.log = job, log

    def start(self, key, argv, env, log_path, inbox):
        argv = list(argv)
        argv[argv.index("--device-type") + 1] = "CPU"
        argv[argv.index("--gpu-pci") + 1] = ""
        handle = super().start(key, argv, env, log_path, inbox)
        self.log.append({"job": self.job, "card": env.get("CUDA_VISIBLE_DEVICES"), "start": time.time(),
                         "handle": handle})  # fmt: skip
        return handle


def test_two_jobs_on_two_fake_gpus_are_queued_and_never_share_a_card(slow_blend, tmp_path):
    report, started = fake_cards(2), []
    job_dirs, statuses = {}, {}
    for name in ("first", "second"):
        spec = JobSpec(blend=str(slow_blend), output_dir=str(tmp_path / name), device_type="CUDA", frames="1-6",
                       samples=16)  # fmt: skip
        job_dirs[name] = jobs.create_job(spec, job_dir=str(tmp_path / f"job-{name}"))

    def run(name: str) -> None:
        factory = CardsOnCpu(name, started)
        statuses[name] = run_job(job_dirs[name], report=report, factory=factory, handle_signals=False)

    first = threading.Thread(target=run, args=("first",))
    first.start()
    wait_for(lambda: (jobs.read_status(job_dirs["first"]) or {}).get("state") == "running", 60, what="first job")
    second = threading.Thread(target=run, args=("second",))
    second.start()
    queued = wait_for(lambda: (jobs.read_status(job_dirs["second"]) or {}).get("state") == "queued"
                      and jobs.read_status(job_dirs["second"]), 60, what="second job queued")  # fmt: skip
    assert queued["phase"] == "Queued behind job-first (2 of 2 GPUs busy)"
    listing = run_cli("jobs", "--json")
    rows = {row["job_id"]: row for row in json.loads(listing.stdout)}
    assert rows["job-first"]["state"] == "running" and rows["job-second"]["state"] == "queued"
    first.join(300), second.join(300)
    assert statuses["first"]["state"] == statuses["second"]["state"] == "done"
    first_end = statuses["first"]["finished_at"]
    second_workers = [entry for entry in started if entry["job"] == "second"]
    assert second_workers and all(entry["start"] > first_end for entry in second_workers), "two lanes on one card"
    cards = {entry["card"] for entry in started}
    assert cards == {gpu.uuid for gpu in report.gpus}  # each lane pinned to one fake card, both cards used
    for name in ("first", "second"):
        out = tmp_path / name
        assert sorted(path.name for path in out.glob("*.png")) == [f"frame_{n:04d}.png" for n in range(1, 7)]
        assert all(check_image(str(path)) is None for path in out.glob("*.png"))
    assert not worker_processes(str(slow_blend))


def test_cancel_works_on_a_queued_job(tiny_blend, tmp_path):
    report = fake_cards(1)
    from dispatcher.leases import CardLeases

    holder = CardLeases(jobs.default_jobs_root(), "holder", str(tmp_path / "holder"))
    assert holder.try_take([[report.gpus[0].uuid]])[0]
    spec = JobSpec(blend=str(tiny_blend), output_dir=str(tmp_path / "out"), device_type="CUDA", frames="1-2")
    job_dir = jobs.create_job(spec, job_dir=str(tmp_path / "job"))
    result = {}
    waiting = threading.Thread(
        target=lambda: result.update(run_job(job_dir, report=report, factory=CardsOnCpu("job", []),
                                             handle_signals=False)))  # fmt: skip
    waiting.start()
    try:
        wait_for(lambda: (jobs.read_status(job_dir) or {}).get("state") == "queued", 60, what="the job to queue")
        assert jobs.read_status(job_dir)["phase"] == "Queued behind holder (1 of 1 GPUs busy)"
        with open(os.path.join(job_dir, "cancel.request"), "w") as handle:  # what `cancel` writes first
            handle.write("now")
        waiting.join(30)
        assert result["state"] == "cancelled" and not list((tmp_path / "out").glob("*.png"))
    finally:
        holder.release()
        waiting.join(30)


def test_restricted_cuda_visible_devices_only_the_allowed_fake_card_gets_a_lane(tiny_blend, tmp_path, monkeypatch):
    report = fake_cards(3)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", report.gpus[1].uuid)
    started: list = []
    spec = JobSpec(blend=str(tiny_blend), output_dir=str(tmp_path / "out"), device_type="CUDA", frames="1-3")
    job_dir = jobs.create_job(spec, job_dir=str(tmp_path / "job"))
    status = run_job(job_dir, report=report, factory=CardsOnCpu("job", started), handle_signals=False)
    assert status["state"] == "done" and status["frames"]["rendered"] == 3
    assert [lane["name"] for lane in status["lanes"]] == ["gpu1"]
    assert {entry["card"] for entry in started} == {report.gpus[1].uuid}
