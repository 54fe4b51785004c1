"""The Ray backend on a local Ray cluster with fake GPUs (CI has no GPU, 2 cores).

Fake GPUs cannot render, so the end-to-end tests use the documented CPU test mode: device type CPU
plus ``spec.extra["ray_gpus_per_lane"] = 1``. Each lane's actor still asks Ray for one GPU and its
worker gets Ray's CUDA_VISIBLE_DEVICES, but the worker renders on the CPU because its device type
is CPU. Every Ray here binds 127.0.0.1 only, and every test stops the Ray processes it started.
"""

import os

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # Ray started here binds 127.0.0.1 only

import json  # noqa: E402
import pickle  # noqa: E402
import queue  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import uuid  # noqa: E402

import psutil  # noqa: E402
import pytest  # noqa: E402
from farmtest import ROOT, frame_names, run_cli, wait_for, worker_processes  # noqa: E402

from dispatcher import cli, jobs, ray_backend  # noqa: E402
from dispatcher.images import check_image, image_size  # noqa: E402
from dispatcher.runner import JobRun, run_job  # noqa: E402
from dispatcher.spec import JobSpec, SpecError  # noqa: E402

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.ray
FAKE_GPU = {"ray_gpus_per_lane": 1}


def frame_records(job_dir) -> list[dict]:
    with open(os.path.join(job_dir, "frames.jsonl"), encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def done_frames(job_dir) -> list[int]:
    return sorted(record["frame"] for record in frame_records(job_dir) if record["status"] == "done")


def ray_session_processes(pid: int) -> list[psutil.Process]:
    """Ray processes (gcs_server, raylet, workers...) of the session a driver with ``pid`` started."""
    pattern = re.compile(rf"session_[0-9_-]+_{pid}\b")
    found = []
    for process in psutil.process_iter(["cmdline"]):
        try:
            if pattern.search(" ".join(process.info["cmdline"] or [])):
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


@pytest.fixture(scope="module")
def ray_cluster():
    """A local Ray with two fake GPUs and two CPUs; its address for drivers in other processes."""
    if ray.is_initialized():
        ray.shutdown()
    ray.init(address="local", num_gpus=2, num_cpus=2, include_dashboard=False, log_to_driver=False,
             namespace=ray_backend.NAMESPACE)  # fmt: skip
    try:
        assert {node["NodeManagerAddress"] for node in ray.nodes()} == {"127.0.0.1"}
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()
    assert not ray_session_processes(os.getpid()), "Ray processes left behind"


def wait_gpus_free(total: float = 2.0) -> None:
    wait_for(lambda: ray.available_resources().get("GPU", 0) == total, 30, what="Ray GPUs to be given back")


# -- planning (no cluster) ----------------------------------------------------------------------
NODES = [
    {"node_id": "a" * 56, "ip": "10.0.0.1", "gpus": 2, "cpus": 16},
    {"node_id": "b" * 56, "ip": "10.0.0.2", "gpus": 4, "cpus": 8},
]


def spec(**options) -> JobSpec:
    return JobSpec(blend="/shared/shot.blend", output_dir="/shared/out", backend="ray", **options)


def test_plan_one_lane_per_gpu_of_every_node_pinned_by_ray():
    lanes = ray_backend.plan_ray_lanes(spec(), NODES, "OPTIX")
    assert [lane.name for lane in lanes] == [f"gpu{index}" for index in range(6)]
    assert [lane.node_ip for lane in lanes] == ["10.0.0.1"] * 2 + ["10.0.0.2"] * 4
    assert all(lane.num_gpus == 1 and lane.num_cpus == 0 and lane.device_type == "OPTIX" for lane in lanes)
    # Ray sets CUDA_VISIBLE_DEVICES for the actor: no local NVML UUID and no override here
    assert all(lane.env == {"CUDA_DEVICE_ORDER": "PCI_BUS_ID"} for lane in lanes)
    assert [lane.threads for lane in lanes] == [8, 8, 2, 2, 2, 2]  # the node's cores shared by its lanes
    assert "OPTIX 1 Ray GPU @10.0.0.2/bbbbbbbb" == lanes[-1].describe()


def test_plan_groups_combined_copies_and_cpu_lane():
    groups = ray_backend.plan_ray_lanes(spec(layout="groups", gpus_per_worker=2), NODES, "CUDA")
    assert [(lane.name, lane.num_gpus) for lane in groups] == [("gpu0+1", 2), ("gpu2+3", 2), ("gpu4+5", 2)]
    combined = ray_backend.plan_ray_lanes(spec(layout="combined", cpu_lane=True), NODES, "CUDA")
    assert [(lane.name, lane.num_gpus) for lane in combined] == [
        ("gpu0+1", 2), ("cpu0", 0), ("gpu2+3+4+5", 4), ("cpu1", 0)
    ]  # fmt: skip
    cpu = [lane for lane in combined if lane.name.startswith("cpu")]
    assert all(lane.env["CUDA_VISIBLE_DEVICES"] == "" and lane.num_cpus == 1 for lane in cpu)
    copies = ray_backend.plan_ray_lanes(spec(workers_per_gpu=2), NODES[:1], "OPTIX")
    assert [(lane.name, lane.num_gpus) for lane in copies] == [("gpu0.0", 0.5), ("gpu0.1", 0.5),
                                                               ("gpu1.0", 0.5), ("gpu1.1", 0.5)]  # fmt: skip


def test_plan_cpu_lanes_and_the_cpu_test_mode():
    lanes = ray_backend.plan_ray_lanes(spec(), NODES, "CPU")
    assert [(lane.name, lane.node_ip, lane.threads) for lane in lanes] == [
        ("cpu0", "10.0.0.1", 4), ("cpu1", "10.0.0.1", 4), ("cpu2", "10.0.0.1", 4), ("cpu3", "10.0.0.1", 4),
        ("cpu4", "10.0.0.2", 4), ("cpu5", "10.0.0.2", 4),
    ]  # fmt: skip
    assert all(lane.num_gpus == 0 and lane.env["CUDA_VISIBLE_DEVICES"] == "" for lane in lanes)
    fake = ray_backend.plan_ray_lanes(spec(extra=FAKE_GPU), NODES, "CPU")
    assert len(fake) == 6 and all(lane.num_gpus == 1 and lane.device_type == "CPU" for lane in fake)
    assert all("CUDA_VISIBLE_DEVICES" not in lane.env for lane in fake)  # Ray's value reaches the worker
    assert len(ray_backend.plan_ray_lanes(spec(extra=FAKE_GPU, cpu_lanes=2), NODES, "CPU")) == 2


def test_plan_refusals():
    no_gpu = [{"node_id": "c" * 56, "ip": "10.0.0.3", "gpus": 0, "cpus": 4}]
    with pytest.raises(SpecError, match="OPTIX was asked for but the Ray cluster has no GPU"):
        ray_backend.plan_ray_lanes(spec(), no_gpu, "OPTIX")
    with pytest.raises(SpecError, match="every GPU of the cluster"):
        ray_backend.plan_ray_lanes(spec(gpus=["0"]), NODES, "OPTIX")
    with pytest.raises(SpecError, match="ray_gpus_per_lane is for CPU lanes"):
        ray_backend.plan_ray_lanes(spec(extra=FAKE_GPU), NODES, "OPTIX")  # the real GPU path stays strict
    with pytest.raises(SpecError, match="no GPU to give"):
        ray_backend.plan_ray_lanes(spec(extra=FAKE_GPU), no_gpu, "CPU")
    assert ray_backend.cluster_device_type(spec(), NODES) == "OPTIX"
    assert ray_backend.cluster_device_type(spec(), no_gpu) == "CPU"


def test_without_ray_the_cli_says_how_to_install_it(monkeypatch, tiny_blend, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(SpecError, match=r"pip install 'ray\[default\]>=2.9'"):
        ray_backend.check_ray()
    code = cli.main(["render", str(tiny_blend), "-o", str(tmp_path / "out"), "--backend", "ray"])
    assert code == cli.EXIT_BAD_INPUT
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: the Ray backend needs Ray") and "make ray" in error and "\n" not in error
    assert not (tmp_path / "out").exists()


def test_an_unreachable_cluster_is_refused_at_once():
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens there once closed
    with pytest.raises(SpecError, match=rf"cannot reach the Ray cluster at 127.0.0.1:{port} .*ray start --head"):
        ray_backend._probe(f"127.0.0.1:{port}")
    ray_backend._probe("auto")  # left to Ray


def test_env_overlay_sends_only_what_the_dispatcher_changed(monkeypatch):
    monkeypatch.setenv("GRF_TEST_KEEP", "1")
    monkeypatch.setenv("GRF_TEST_DROP", "1")
    env = {key: value for key, value in os.environ.items() if key != "GRF_TEST_DROP"}
    env.update(PYTHONUNBUFFERED="1", CUDA_DEVICE_ORDER="PCI_BUS_ID")
    overlay = ray_backend._env_overlay(env)
    assert overlay["GRF_TEST_DROP"] is None and "GRF_TEST_KEEP" not in overlay
    assert overlay["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
    assert "PATH" not in overlay and "HOME" not in overlay  # each node keeps its own


def test_actor_class_travels_by_value_and_needs_no_dispatcher_package():
    """Nodes need Ray and Blender, not this package: the actor unpickles with dispatcher unimportable."""
    from ray import cloudpickle

    ray_backend.actor_class()
    blob = cloudpickle.dumps(ray_backend.LaneActor)
    code = (
        "import pickle, sys; sys.modules['dispatcher'] = None\n"
        "cls = pickle.loads(sys.stdin.buffer.read())\n"
        "actor = cls(); actor._add_log(b'x'); print(actor.events(0.0))\n"
        "print(cls.start.__globals__['_node_problem'](sys.executable, '/no/such.blend', None))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], input=blob, capture_output=True, cwd=tempfile.gettempdir(),
                            timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr.decode()
    lines = result.stdout.decode().splitlines()
    assert lines[0] == "([], b'x')"
    assert lines[1].startswith("cannot read the .blend /no/such.blend") and "shared by every node" in lines[1]
    assert pickle.loads(blob) is not None


# -- end to end on a local Ray with two fake GPUs ----------------------------------------------
def test_two_fake_gpus_render_each_frame_once_like_the_local_backend(ray_cluster, slow_blend, tmp_path):
    # Ray backend, through the CLI, connected to the cluster by address
    ray_out, ray_job = tmp_path / "ray_out", tmp_path / "ray_job"
    # frames of ~0.5 s, so that both lanes are up before the queue runs dry
    job_spec = JobSpec(blend=str(slow_blend), output_dir=str(ray_out), device_type="CPU", backend="ray",
                       ray_address=ray_cluster, frames="1-8", samples=32, extra=FAKE_GPU)  # fmt: skip
    jobs.create_job(job_spec, job_dir=str(ray_job))
    ray_run = run_cli("run-job", str(ray_job))
    assert ray_run.returncode == 0, ray_run.stderr
    ray_status = jobs.read_status(str(ray_job))
    # the local backend on the same file, for comparison
    local_out, local_job = tmp_path / "local_out", tmp_path / "local_job"
    local_run = run_cli("render", str(slow_blend), "-o", str(local_out), "--job-dir", str(local_job),
                        "--cpu-lanes", "2", "--frames", "1-8", "--samples", "32")  # fmt: skip
    assert local_run.returncode == 0, local_run.stderr
    local_status = jobs.read_status(str(local_job))

    lanes = ray_status["lanes"]
    assert [lane["name"] for lane in lanes] == ["cpu0", "cpu1"]
    visible = [lane["visible_devices"] for lane in lanes]
    assert sorted(visible) == ["0", "1"], visible  # each actor's worker saw its own Ray GPU
    assert all(lane["devices_used"] == [{"id": "CPU", "name": "CPU", "type": "CPU"}] for lane in lanes)
    assert all(lane["node"] and "127.0.0.1" in lane["node"] for lane in lanes)
    assert all("1 Ray GPU" in lane["device"] for lane in lanes)

    assert done_frames(ray_job) == list(range(1, 9))  # every frame arrived exactly once
    ray_files = frame_names(ray_out)
    assert ray_files == frame_names(local_out)
    assert ray_files == [f"frame_{frame:04d}.png" for frame in range(1, 9)]  # no temporary file left
    for name in ray_files:
        assert check_image(str(ray_out / name)) is None and image_size(str(ray_out / name)) == (96, 96)
    assert ray_status["state"] == local_status["state"] == "done"
    assert ray_status["frames"] == local_status["frames"]
    assert ray_status["device_type"] == local_status["device_type"] == "CPU"
    assert [lane["name"] for lane in local_status["lanes"]] == [lane["name"] for lane in lanes]
    assert sum(lane["frames_done"] for lane in lanes) == 8 and all(lane["frames_done"] for lane in lanes)
    # the printed summary adds up the same way
    summary = [line for line in ray_run.stdout.splitlines() if line.startswith("frames:")]
    assert summary and summary[0].startswith("frames: 8/8 done (8 rendered, 0 done earlier by this job, 0 kept, "
                                             "0 failed)")
    assert summary[0].split(";")[0] == [line for line in local_run.stdout.splitlines()
                                        if line.startswith("frames:")][0].split(";")[0]  # fmt: skip
    assert "last error" not in ray_run.stdout
    assert not worker_processes(str(slow_blend))
    wait_gpus_free()
    assert not [name for name in ray.util.list_named_actors(all_namespaces=True)
                if str(name).find(ray_backend.ACTOR_PREFIX) >= 0]  # fmt: skip


def test_killing_an_actor_mid_job_loses_no_frame(ray_cluster, slow_blend, tmp_path):
    out = tmp_path / "out"
    job_spec = JobSpec(blend=str(slow_blend), output_dir=str(out), device_type="CPU", backend="ray", frames="1-6",
                       extra=FAKE_GPU)  # fmt: skip
    job_dir = jobs.create_job(job_spec, job_dir=str(tmp_path / "job"))
    job = JobRun(job_dir)
    result = {}
    runner = threading.Thread(target=lambda: result.update(status=job.run()), daemon=True)
    runner.start()

    def rendering_lane():
        supervisor = job.supervisor
        if supervisor is None:
            return None
        run = supervisor.runs.get("cpu1")
        return run if run and run.state == "rendering" and run.frame is not None and run.sample is None else None

    victim = wait_for(rendering_lane, 120, interval=0.01, what="cpu1 rendering a frame")
    killed_frame, handle = victim.frame, victim.handle
    ray.kill(handle.actor)  # as if its node went away
    runner.join(240)
    assert not runner.is_alive()
    status = result["status"]
    assert status["state"] == "done", status["message"]
    assert status["frames"]["done"] == 6 and status["frames"]["failed"] == 0
    assert done_frames(job_dir) == list(range(1, 7))  # each frame exactly once, none lost
    lane = next(lane for lane in status["lanes"] if lane["name"] == "cpu1")
    assert lane["failures"] >= 1 and lane["restarts"] >= 1
    assert handle.wait(10) == -9
    records = frame_records(job_dir)
    retried = [record for record in records if record["status"] == "retry"]
    # the frame in flight (killed before its first sample) went back to the queue and was done once
    assert [(record["frame"], record["lane"]) for record in retried] == [(killed_frame, "cpu1")]
    assert "killed by signal 9" in retried[0]["error"]
    assert frame_names(out) == [f"frame_{frame:04d}.png" for frame in range(1, 7)]
    wait_for(lambda: not worker_processes(str(slow_blend)), 15, what="workers to exit")
    wait_gpus_free()


def test_a_gpu_lane_on_a_fake_ray_gpu_refuses_to_render_on_the_cpu(ray_cluster, tiny_blend, tmp_path):
    """The real GPU path through Ray: Ray hands each actor a GPU Cycles cannot use; no CPU fallback."""
    out = tmp_path / "out"
    job_spec = JobSpec(blend=str(tiny_blend), output_dir=str(out), device_type="CUDA", backend="ray", frames="1-2")
    job_dir = jobs.create_job(job_spec, job_dir=str(tmp_path / "job"))
    status = run_job(job_dir, handle_signals=False)
    assert status["state"] == "failed"
    assert "refusing to render on the CPU" in status["message"]
    assert re.match(r"node \S+ \(127\.0\.0\.1\), CUDA_VISIBLE_DEVICES=[01]: CUDA GPU", status["message"])
    assert [lane["name"] for lane in status["lanes"]] == ["gpu0", "gpu1"]
    assert all(lane["state"] == "failed" and lane["frames_done"] == 0 for lane in status["lanes"])
    assert not list(out.glob("*.png"))
    for name in ("gpu0", "gpu1"):  # each worker was pinned by Ray to its own (fake) GPU
        log = (tmp_path / "job" / "logs" / f"{name}.log").read_text()
        assert re.search(r"CUDA_VISIBLE_DEVICES=[01]\n", log), log[-1000:]
    wait_gpus_free()


def test_a_node_that_cannot_see_the_files_sends_a_one_line_fatal(ray_cluster, tiny_blend, tmp_path):
    lane = ray_backend.RayLane("cpu0", "CPU", num_gpus=1)
    missing = str(tmp_path / "not shared" / "shot.blend")
    factory = ray_backend.RayFactory(JobSpec(blend=missing, output_dir=str(tmp_path)), [lane])
    inbox: queue.Queue = queue.Queue()
    argv = [sys.executable, str(ROOT / "dispatcher" / "blender_scripts" / "worker.py"), "--blend", missing]
    handle = factory.start(("cpu0", 1), argv, dict(os.environ), str(tmp_path / "cpu0.log"), inbox)
    messages = [inbox.get(timeout=60)[1] for _ in range(2)]
    assert [message["event"] for message in messages] == ["fatal", "exit"]
    error = messages[0]["error"]
    assert error.startswith("node ") and "127.0.0.1" in error and missing in error and "\n" not in error
    assert "shared by every node" in error
    assert handle.wait(10) == 3

    unwritable = tmp_path / "a file, not a folder"
    unwritable.write_text("x")
    factory = ray_backend.RayFactory(JobSpec(blend=str(tiny_blend), output_dir=str(unwritable)), [lane])
    factory.start(("cpu0", 2), argv, dict(os.environ), str(tmp_path / "cpu0.log"), inbox)
    key, fatal = inbox.get(timeout=60)
    assert key == ("cpu0", 2)
    assert fatal["event"] == "fatal" and str(unwritable) in fatal["error"] and "output folder" in fatal["error"]
    factory.close()
    wait_gpus_free()


def test_shipped_files_travel_through_ray_instead_of_shared_storage(ray_cluster, tiny_blend, tmp_path):
    out = tmp_path / "out"
    job_spec = JobSpec(blend=str(tiny_blend), output_dir=str(out), device_type="CPU", backend="ray", frames="1-4",
                       cpu_lanes=1, extra={**FAKE_GPU, "ray_ship_files": True})  # fmt: skip
    job_dir = jobs.create_job(job_spec, job_dir=str(tmp_path / "job"))
    status = run_job(job_dir, handle_signals=False)
    assert status["state"] == "done" and status["frames"]["done"] == 4, status["message"]
    assert done_frames(job_dir) == [1, 2, 3, 4]
    assert frame_names(out) == [f"frame_{frame:04d}.png" for frame in range(1, 5)]
    assert all(check_image(str(out / name)) is None for name in frame_names(out))
    log = (tmp_path / "job" / "logs" / "cpu0.log").read_text()
    stored = re.search(r"shipped \.blend stored at (.+); frames go to (.+)", log)
    assert stored, log[-2000:]
    node_blend, node_frames = stored.groups()
    assert "grf-ship-" in node_blend and node_blend != str(tiny_blend) and not node_frames.startswith(str(out))
    with open(os.path.join(job_dir, "scene.json"), encoding="utf-8") as handle:
        assert json.load(handle)["blend"] == node_blend  # the worker opened the node's copy
    assert not os.path.exists(node_frames)  # the node's frame folder is gone with its worker
    shutil.rmtree(os.path.dirname(node_blend), ignore_errors=True)  # the node's cached copy of the .blend
    wait_gpus_free()


def test_render_backend_ray_without_address_starts_and_stops_its_own_ray(slow_blend, tmp_path):
    out = tmp_path / "out"
    process = subprocess.Popen(
        [sys.executable, "-m", "dispatcher", "render", str(slow_blend), "-o", str(out), "--backend", "ray",
         "--device", "CPU", "--cpu-lanes", "2", "--frames", "1-4", "--samples", "32", "--json"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    stdout, stderr = process.communicate(timeout=180)
    assert process.returncode == 0, stderr
    status = json.loads(stdout)  # Ray's own output does not get into the JSON
    assert status["state"] == "done" and status["frames"]["done"] == 4
    assert [lane["name"] for lane in status["lanes"]] == ["cpu0", "cpu1"]
    assert all("127.0.0.1" in lane["node"] and lane["visible_devices"] == "" for lane in status["lanes"])
    assert frame_names(out) == [f"frame_{frame:04d}.png" for frame in range(1, 5)]
    wait_for(lambda: not ray_session_processes(process.pid), 20, what="the job's own Ray to stop")


# -- two Ray nodes on one machine ---------------------------------------------------------------
def _ray_cli() -> str:
    return os.path.join(os.path.dirname(sys.executable), "ray")


def _stop_tree(process: subprocess.Popen) -> None:
    """Stop a `ray start --block` and every process it started (not `ray stop`: that stops every Ray)."""
    try:
        family = [process, *psutil.Process(process.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        family = [process]
    for member in family:
        try:
            member.send_signal(signal.SIGTERM)
        except (psutil.NoSuchProcess, ProcessLookupError):
            pass
    _gone, alive = psutil.wait_procs([psutil.Process(p.pid) for p in family if psutil.pid_exists(p.pid)], timeout=10)
    for member in alive:
        try:
            member.kill()
        except psutil.NoSuchProcess:
            pass
    process.wait(10)


# A worker node's `ray start` refuses 127.0.0.1 and resolves it to the LAN address; keep the loopback.
RAY_NODE_ON_LOOPBACK = """
import sys
import ray._private.services as services
services.resolve_ip_for_localhost = lambda host: host
from ray.scripts.scripts import main
sys.argv = ["ray", *sys.argv[1:]]
main()
"""
WAIT_NODES = """
import sys, time, ray
ray.init(address=sys.argv[1], log_to_driver=False)
deadline = time.monotonic() + 90
while len([node for node in ray.nodes() if node["Alive"]]) < int(sys.argv[2]) and time.monotonic() < deadline:
    time.sleep(0.5)
print(len([node for node in ray.nodes() if node["Alive"]]))
"""


@pytest.mark.slow
def test_two_ray_nodes_on_one_machine_share_one_job(slow_blend, tmp_path):
    """`ray start --head` plus `ray start --address` (one fake GPU each) as an admin would, on 127.0.0.1.

    Stopped by signalling the `ray start --block` processes and their children, not `ray stop`, which
    would stop every Ray on the machine (other test runs included).
    """
    temp_dir = tempfile.mkdtemp(prefix="grf-ray-", dir="/tmp")  # short: Ray's socket paths have a length limit
    port = 6390 + os.getpid() % 500
    address = f"127.0.0.1:{port}"
    # every node and the dispatcher share one token (Ray 2.52+ token authentication)
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "token",
           "RAY_AUTH_TOKEN": uuid.uuid4().hex}  # fmt: skip
    common = ["--block", "--num-cpus", "1", "--num-gpus", "1", "--node-ip-address", "127.0.0.1",
              "--disable-usage-stats"]  # fmt: skip
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "start_new_session": True, "env": env}
    started = []
    try:
        started.append(subprocess.Popen([_ray_cli(), "start", "--head", "--port", str(port), "--temp-dir", temp_dir,
                                         "--include-dashboard", "false", *common], **quiet))  # fmt: skip
        waited = subprocess.run([sys.executable, "-c", WAIT_NODES, address, "1"], env=env, capture_output=True,
                                text=True, timeout=120)  # fmt: skip
        assert waited.stdout.strip() == "1", waited.stderr[-2000:]
        node_env = {key: value for key, value in env.items() if key != "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"}
        started.append(subprocess.Popen([sys.executable, "-c", RAY_NODE_ON_LOOPBACK, "start", "--address", address,
                                         *common], **{**quiet, "env": node_env}))  # fmt: skip
        waited = subprocess.run([sys.executable, "-c", WAIT_NODES, address, "2"], env=env, capture_output=True,
                                text=True, timeout=120)  # fmt: skip
        assert waited.stdout.strip() == "2", waited.stderr[-2000:]

        out, job = tmp_path / "out", tmp_path / "job"
        job_spec = JobSpec(blend=str(slow_blend), output_dir=str(out), device_type="CPU", backend="ray",
                           ray_address=address, frames="1-8", extra=FAKE_GPU)  # fmt: skip
        jobs.create_job(job_spec, job_dir=str(job))
        result = run_cli("run-job", str(job), env=env)
        assert result.returncode == 0, result.stderr[-3000:]
        status = jobs.read_status(str(job))
        assert status["state"] == "done", status["message"]
        lanes = status["lanes"]
        nodes = {lane["device"].split("/")[-1] for lane in lanes}
        assert len(lanes) == 2 and len(nodes) == 2, [lane["device"] for lane in lanes]  # one lane per node
        assert all(lane["visible_devices"] == "0" for lane in lanes)  # each node's only GPU
        assert all(lane["frames_done"] >= 1 for lane in lanes)
        assert done_frames(job) == list(range(1, 9))
        assert frame_names(out) == [f"frame_{frame:04d}.png" for frame in range(1, 9)]
    finally:
        for process in reversed(started):
            _stop_tree(process)
        shutil.rmtree(temp_dir, ignore_errors=True)
    assert not [process for process in started if psutil.pid_exists(process.pid)]
