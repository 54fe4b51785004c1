"""Ray backend: the same lanes, frame queue and worker script, with each lane run by a Ray actor.

Design:
- Lanes are planned per Ray node from ``ray.nodes()`` (each node's GPU and CPU counts): one lane per
  GPU (``per-card``), per group of GPUs (``groups``), per node (``combined``), or CPU lanes on
  every node. Each lane becomes one actor that asks Ray for its GPUs (``num_gpus``) and prefers its
  planned node (soft node affinity), so a group of GPUs and the thread counts fit one node.
- The actor starts the very same headless worker (same argv as process.worker_command) as its
  subprocess on that node and relays its JSON-line events and log to the dispatcher, where a
  RayWorker handle puts them into the supervisor's inbox, exactly like a LocalProcess.
- GPU pinning is Ray's: an actor holding GPUs keeps the CUDA_VISIBLE_DEVICES (and HIP/ROCR/oneAPI
  selectors) Ray set for it, and the worker gets that value; local NVML UUIDs are never used.
  A GPU lane still passes its device type to the worker, which refuses to render on the CPU.
- CPU test mode (no real GPU, e.g. CI): device type CPU plus ``spec.extra["ray_gpus_per_lane"] = 1``
  plans one CPU lane per (fake) Ray GPU; each actor holds its GPU and its worker sees Ray's
  CUDA_VISIBLE_DEVICES, but renders on the CPU because its device type is CPU. The real GPU path
  is untouched by this option (it is refused with a GPU device type).
- Files: the .blend and the output folder must be on shared storage at the same path on every node.
  Each actor checks that on its node first and reports a one-line "fatal" event naming the node and
  the path when it cannot read the .blend or write the output folder. Without shared storage,
  ``spec.extra["ray_ship_files"]`` (``render --ship-files``) sends the .blend's bytes through Ray's
  object store to a node-local copy and returns each frame's bytes with its "done" event; the
  dispatcher writes them where the local backend's worker would have (a self-contained .blend only:
  linked libraries and unpacked textures are not sent).
- Node loss: when an actor dies (ray.kill, node down, RayActorError) its handle reports
  {"event": "exit", "code": -9}; the supervisor requeues the frame in flight and restarts the lane.
- The actor class is shipped to the nodes by value (cloudpickle) and uses only the standard
  library, and the worker script's source travels with it, so nodes need Ray and Blender (same
  Python and Ray version as the dispatcher), not this package.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import socket
import sys
import threading
import time
from dataclasses import dataclass

from .lanes import Lane, _share_threads, pinning_env
from .process import WORKER_SCRIPT
from .spec import GPU_DEVICE_TYPES, JobSpec, SpecError

INSTALL_HINT = "pip install 'ray[default]>=2.9' (or: make ray)"
NAMESPACE = "gpu-render-farm"
ACTOR_PREFIX = "grf-"
DEVICE_SELECTORS = ("CUDA_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES", "ONEAPI_DEVICE_SELECTOR")
LOCAL_ONLY_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # "0": a Ray started here binds 127.0.0.1 only


def check_ray() -> None:
    """Raise SpecError (CLI exit 2) with the install command when Ray is not installed."""
    import importlib.util

    try:
        found = importlib.util.find_spec("ray") is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise SpecError(f"the Ray backend needs Ray, which is not installed: {INSTALL_HINT}")


def connect(address: str | None) -> bool:
    """Connect to the cluster at ``address``, or start a local Ray for this job; True if we did."""
    check_ray()
    if not address and "ray" not in sys.modules:
        # A Ray started just for this job serves this machine only: keep it on the loopback.
        os.environ.setdefault(LOCAL_ONLY_ENV, "0")
    import ray

    if ray.is_initialized():
        return False
    if address:
        _probe(address)
    options = {"namespace": NAMESPACE, "log_to_driver": False, "configure_logging": False}
    try:
        if address:
            ray.init(address=address, **options)
        else:
            ray.init(address="local", include_dashboard=False, **options)
    except Exception as error:  # ConnectionError, RuntimeError, ValueError ...
        where = f"the Ray cluster at {address}" if address else "a local Ray"
        hint = ""
        if address:
            hint = ("; with token authentication, RAY_AUTH_MODE=token and the cluster's token "
                    "(~/.ray/auth_token or RAY_AUTH_TOKEN) must be set here too")  # fmt: skip
        raise SpecError(f"cannot connect to {where}: {' '.join(str(error).split())[:300]}{hint}") from None
    return True


def _probe(address: str, timeout: float = 5.0) -> None:
    """Refuse an unreachable HOST:PORT at once (ray.init would wait for it for minutes)."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or "://" in address:
        return  # "auto", ray://..., or something Ray will explain itself
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise SpecError(
            f"cannot reach the Ray cluster at {address} ({reason}): is `ray start --head` running there, "
            "and is the port open from this machine?"
        ) from None


# -- planning -------------------------------------------------------------------------------------
@dataclass
class RayLane(Lane):
    """A lane run by a Ray actor: the resources it asks for and the node it prefers."""

    num_gpus: float = 0.0
    num_cpus: float = 0.0
    node_id: str | None = None
    node_ip: str | None = None

    def describe(self) -> str:
        where = f" @{self.node_ip or '?'}/{(self.node_id or '?')[:8]}"
        gpus = f"{self.num_gpus:g} Ray GPU" if self.num_gpus else ""
        if not self.is_gpu:
            cpu = f"CPU ({self.threads} threads)" if self.threads else "CPU"
            return cpu + (f" + {gpus}" if gpus else "") + where
        return f"{self.device_type} {gpus}{where}"

    def to_dict(self) -> dict:
        data = super().to_dict()
        data.update(num_gpus=self.num_gpus, num_cpus=self.num_cpus, node_id=self.node_id, node_ip=self.node_ip)
        return data


def cluster_nodes() -> list[dict]:
    """Alive nodes of the connected cluster: id, IP, GPUs and CPUs, in a stable order."""
    import ray

    nodes = []
    for node in ray.nodes():
        if not node.get("Alive"):
            continue
        resources = node.get("Resources") or {}
        nodes.append(
            {
                "node_id": node["NodeID"],
                "ip": node.get("NodeManagerAddress"),
                "gpus": int(resources.get("GPU", 0)),
                "cpus": int(resources.get("CPU", 0)),
            }
        )
    return sorted(nodes, key=lambda node: (node["ip"] or "", node["node_id"]))


def cluster_device_type(spec: JobSpec, nodes: list[dict]) -> str:
    """The spec's device type, or OPTIX when the cluster has a GPU (the worker falls back to CUDA)."""
    if spec.device_type:
        return spec.device_type
    return "OPTIX" if any(node["gpus"] for node in nodes) else "CPU"


def plan_ray_lanes(spec: JobSpec, nodes: list[dict], device_type: str) -> list[RayLane]:
    """Lanes over the cluster's nodes (see the module docstring); raises SpecError when none fit."""
    if spec.gpus:
        raise SpecError("--gpus picks GPUs of this machine; with the Ray backend every GPU of the cluster is used")
    fake = float(spec.extra.get("ray_gpus_per_lane") or 0)
    total_gpus = sum(node["gpus"] for node in nodes)
    summary = f"{len(nodes)} node(s), {total_gpus} GPU(s), {sum(node['cpus'] for node in nodes)} CPU(s)"
    if not nodes:
        raise SpecError("the Ray cluster has no alive node")
    lanes: list[RayLane] = []
    counters = {"gpu": 0, "cpu": 0}
    for node in nodes:
        if device_type in GPU_DEVICE_TYPES:
            if fake:
                raise SpecError("ray_gpus_per_lane is for CPU lanes; GPU lanes take their GPUs from the layout")
            node_lanes = _gpu_lanes(spec, device_type, node, counters)
            if spec.cpu_lane:
                node_lanes.append(_lane(f"cpu{_next(counters, 'cpu')}", "CPU", node, 0.0))
        elif fake:
            count = int(node["gpus"] // fake)
            node_lanes = [_lane(f"cpu{_next(counters, 'cpu')}", "CPU", node, fake) for _ in range(count)]
        else:
            cores = max(1, node["cpus"])
            count = spec.cpu_lanes or (max(1, min(4, cores // 4)) if cores >= 8 else 1)
            node_lanes = [_lane(f"cpu{_next(counters, 'cpu')}", "CPU", node, 0.0) for _ in range(count)]
        _share_threads(node_lanes, spec.threads, max(1, node["cpus"]))
        lanes.extend(node_lanes)
    if fake and spec.cpu_lanes:
        lanes = lanes[: spec.cpu_lanes]
    if not lanes:
        if fake:
            raise SpecError(f"ray_gpus_per_lane={fake:g} but the Ray cluster has no GPU to give ({summary})")
        raise SpecError(f"{device_type} was asked for but the Ray cluster has no GPU ({summary}); "
                        "use --device CPU for CPU lanes")  # fmt: skip
    for lane in lanes:
        if lane.num_gpus:
            # Ray pins the actor (CUDA_VISIBLE_DEVICES as Ray numbers its node's GPUs, in PCI order).
            lane.env = {"CUDA_DEVICE_ORDER": "PCI_BUS_ID"} if lane.device_type in ("OPTIX", "CUDA") else {}
        else:
            lane.env = pinning_env("CPU", [])
        lane.num_cpus = 0.0 if lane.num_gpus else 1.0
    return lanes


def _next(counters: dict, kind: str) -> int:
    counters[kind] += 1
    return counters[kind] - 1


def _lane(name: str, device_type: str, node: dict, num_gpus: float) -> RayLane:
    return RayLane(name, device_type, num_gpus=num_gpus, node_id=node["node_id"], node_ip=node["ip"])


def _gpu_lanes(spec: JobSpec, device_type: str, node: dict, counters: dict) -> list[RayLane]:
    count = node["gpus"]
    if not count:
        return []
    indices = [_next(counters, "gpu") for _ in range(count)]  # cluster-wide numbering, node by node
    if spec.layout == "combined":
        groups = [indices]
    elif spec.layout == "groups":
        size = spec.gpus_per_worker
        groups = [indices[start : start + size] for start in range(0, count, size)]
    else:  # per-card; "auto" too (autotune measures this machine, not the cluster)
        groups = [[index] for index in indices]
    lanes = []
    for group in groups:
        base = "gpu" + "+".join(str(index) for index in group)
        for copy in range(spec.workers_per_gpu):
            name = base if spec.workers_per_gpu == 1 else f"{base}.{copy}"
            lanes.append(_lane(name, device_type, node, len(group) / spec.workers_per_gpu))
    return lanes


def prepare_ray(spec: JobSpec) -> tuple[str, list[RayLane], RayFactory]:
    """Connect, plan lanes on the cluster and build the factory: (device type, lanes, factory)."""
    owned = connect(spec.ray_address)
    try:
        nodes = cluster_nodes()
        device_type = cluster_device_type(spec, nodes)
        lanes = plan_ray_lanes(spec, nodes, device_type)
    except BaseException:
        if owned:
            import ray

            ray.shutdown()
        raise
    return device_type, lanes, RayFactory(spec, lanes, owns_ray=owned)


# -- the actor (runs on a Ray node; standard library only) ----------------------------------------
class LaneActor:
    """One lane on one node: starts the headless worker as a subprocess and relays its events."""

    def __init__(self):
        self._events: queue.Queue = queue.Queue()
        self._log: list[bytes] = []
        self._log_lock = threading.Lock()
        self._process = None
        self._started = threading.Event()
        self._ship_out: str | None = None  # node-local folder for frames when files are shipped
        self._start_error = "no answer in 60 s"

    def where(self) -> dict:
        import ray

        return {
            "host": socket.gethostname(),
            "ip": ray.util.get_node_ip_address(),
            "node_id": ray.get_runtime_context().get_node_id(),
            "actor_pid": os.getpid(),
            "visible": os.environ.get("CUDA_VISIBLE_DEVICES"),
        }

    def start(self, argv: list[str], overlay: dict, holds_gpus: bool, files: dict, worker: dict) -> dict:
        """Check the node can see the job's files, then start the worker; {"fatal": msg} if not."""
        info = self.where()
        node = f"node {info['host']} ({info['ip']})"
        if files.get("blend_ref") is not None:  # no shared storage: the .blend came through Ray
            try:
                local_blend, self._ship_out = _receive_blend(files)
            except Exception as error:
                return {**info, "fatal": f"{node}: cannot store the shipped .blend ({' '.join(str(error).split())})"}
            argv = [local_blend if arg == files["blend"] else arg for arg in argv]
            self._add_log(f"=== shipped .blend stored at {local_blend}; frames go to {self._ship_out}\n".encode())
            problem = _node_problem(argv[0], None, None)
        else:
            problem = _node_problem(argv[0], files.get("blend"), files.get("output_dir"))
        if problem:
            return {**info, "fatal": f"{node}: {problem}"}
        argv = [_local_worker_script(worker) if arg == worker["path"] else arg for arg in argv]
        env = dict(os.environ)
        for key, value in overlay.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        if "CUDA_CACHE_PATH" in overlay:  # the dispatcher's cache folder may not exist on this node
            env["CUDA_CACHE_PATH"] = os.path.join(os.path.expanduser("~"), ".cache", "gpu-render-farm", "cuda-cache")
        if holds_gpus:  # Ray's assignment is the pinning: keep it, whatever the dispatcher had
            for key in DEVICE_SELECTORS:
                if key in os.environ:
                    env[key] = os.environ[key]
        threading.Thread(target=self._run, args=(argv, env), name="worker", daemon=True).start()
        self._started.wait(60)
        if self._process is None:
            return {**info, "fatal": f"{node}: cannot start the worker {argv[0]} ({self._start_error})"}
        return {**info, "pid": self._process.pid}

    def _run(self, argv: list[str], env: dict) -> None:
        """Start the worker from this long-lived thread (PR_SET_PDEATHSIG follows the parent thread)."""
        import subprocess

        try:
            self._process = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                start_new_session=sys.platform != "win32",
                close_fds=True,
            )
        except OSError as error:
            self._start_error = " ".join(str(error).split())
            self._add_log(f"cannot start {argv[0]}: {error}\n".encode())
            self._started.set()
            return
        self._started.set()
        reader = threading.Thread(target=self._read_log, name="log", daemon=True)
        reader.start()
        for raw in self._process.stdout:
            line = raw.decode("utf-8", "replace").strip()
            if not line:
                continue
            try:
                message = json.loads(line)
            except json.JSONDecodeError:
                self._add_log(raw)
                continue
            if isinstance(message, dict) and "event" in message:
                if self._ship_out and message["event"] == "done":
                    message = self._attach_frame(message)
                self._events.put(message)
        code = self._process.wait()
        reader.join(5)
        if self._ship_out:
            import shutil

            shutil.rmtree(self._ship_out, ignore_errors=True)
        self._events.put({"event": "exit", "code": code})

    def _attach_frame(self, message: dict) -> dict:
        """Shipped files: the frame's bytes travel back with its done event (the node copy is removed)."""
        try:
            with open(message["path"], "rb") as handle:
                data = handle.read()
            os.remove(message["path"])
        except OSError as error:
            return {"event": "frame_error", "frame": message.get("frame"),
                    "error": f"cannot read the rendered frame on the node: {error.strerror}"}  # fmt: skip
        return {**message, "data": data}

    def _read_log(self) -> None:
        stream = self._process.stderr
        while True:
            chunk = stream.read1(65536) if hasattr(stream, "read1") else stream.read(65536)
            if not chunk:
                return
            self._add_log(chunk)

    def _add_log(self, data: bytes) -> None:
        with self._log_lock:
            self._log.append(data)

    def events(self, timeout: float = 1.0) -> tuple[list[dict], bytes]:
        """Events so far (waiting up to ``timeout`` for the first) and the log written since."""
        found = []
        try:
            found.append(self._events.get(timeout=timeout))
            while True:
                found.append(self._events.get_nowait())
        except queue.Empty:
            pass
        with self._log_lock:
            log, self._log = b"".join(self._log), []
        return found, log

    def send(self, message: dict) -> None:
        process = self._process
        if process is None:
            return
        if self._ship_out and message.get("cmd") == "render":
            message = {**message, "path": os.path.join(self._ship_out, os.path.basename(message["path"]))}
        try:
            process.stdin.write((json.dumps(message) + "\n").encode())
            process.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            pass  # the exit event tells the dispatcher

    def stop(self) -> None:
        """SIGKILL the worker's process group."""
        import signal

        process = self._process
        if process is None or process.poll() is not None:
            return
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError, AttributeError):
            try:
                process.kill()
            except OSError:
                pass


def _node_problem(program: str, blend: str | None, output_dir: str | None) -> str | None:
    """Why this node cannot work on the job (one line), or None."""
    import shutil

    shared = "it must be on storage shared by every node, at the same path"
    if blend:
        try:
            with open(blend, "rb") as handle:
                handle.read(12)
        except OSError as error:
            return f"cannot read the .blend {blend} ({error.strerror}); {shared}"
    if output_dir:
        if not os.path.isdir(output_dir):
            return f"cannot see the output folder {output_dir}; {shared}"
        probe = os.path.join(output_dir, f".grf-write-test-{socket.gethostname()}-{os.getpid()}")
        try:
            with open(probe, "wb") as handle:
                handle.write(b"ok")
            os.remove(probe)
        except OSError as error:
            return f"cannot write the output folder {output_dir} ({error.strerror}); {shared}"
    if not os.path.exists(program) and not shutil.which(program):
        return f"worker program {program} not found; install Blender at the same path on every node"
    return None


def _receive_blend(files: dict) -> tuple[str, str]:
    """Store the shipped .blend in a node-local cache (once per job and node); a fresh frames folder."""
    import tempfile

    import ray

    root = os.path.join(tempfile.gettempdir(), f"grf-ship-{os.getuid() if hasattr(os, 'getuid') else 0}")
    folder = os.path.join(root, files["ship_key"])
    os.makedirs(folder, mode=0o700, exist_ok=True)
    path = os.path.join(folder, os.path.basename(files["blend"]))
    if not os.path.exists(path) or os.path.getsize(path) != files["blend_size"]:
        data = ray.get(files["blend_ref"])
        partial = f"{path}.{os.getpid()}.tmp"
        with open(partial, "wb") as handle:
            handle.write(data)
        os.replace(partial, path)
    return path, tempfile.mkdtemp(prefix="frames-", dir=folder)


def _local_worker_script(worker: dict) -> str:
    """The worker script on this node: the dispatcher's own file when visible, else a cached copy."""
    import hashlib
    import tempfile

    path, source = worker["path"], worker["source"]
    try:
        with open(path, encoding="utf-8") as handle:
            if handle.read() == source:
                return path
    except OSError:
        pass
    digest = hashlib.sha256(source.encode()).hexdigest()[:16]
    folder = os.path.join(tempfile.gettempdir(), f"grf-worker-{os.getuid() if hasattr(os, 'getuid') else 0}")
    os.makedirs(folder, mode=0o700, exist_ok=True)
    copy = os.path.join(folder, f"worker-{digest}.py")
    if not os.path.exists(copy):
        partial = f"{copy}.{os.getpid()}.tmp"
        with open(partial, "w", encoding="utf-8") as handle:
            handle.write(source)
        os.replace(partial, copy)
    return copy


# -- the dispatcher side ------------------------------------------------------------------------
_ACTOR_CLASS = None


def actor_class():
    """LaneActor as a Ray actor class, pickled by value so nodes need not have this package."""
    global _ACTOR_CLASS
    if _ACTOR_CLASS is None:
        import ray
        from ray import cloudpickle

        cloudpickle.register_pickle_by_value(sys.modules[__name__])
        _ACTOR_CLASS = ray.remote(max_restarts=0, max_concurrency=1, concurrency_groups={"poll": 1})(LaneActor)
    return _ACTOR_CLASS


class RayWorker:
    """WorkerHandle for a lane's actor: events and log flow back through a polling thread."""

    def __init__(self, key, argv, env, log_path, inbox, lane: RayLane, files: dict, name: str):
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        self.key = key
        self.pid: int | None = None
        self.name = name
        self.returncode: int | None = None
        self._inbox = inbox
        self._log = open(log_path, "ab", buffering=0)  # noqa: SIM115 - closed by the polling thread
        os.chmod(log_path, 0o600)
        self._log.write(f"\n=== start on Ray ({lane.describe()}) {' '.join(argv)}\n".encode())
        self._log_lock = threading.Lock()
        self._frame_paths: dict[int, str] = {}  # shipped files: where each frame's bytes go
        self._killed = threading.Event()
        self._done = threading.Event()
        strategy = NodeAffinitySchedulingStrategy(lane.node_id, soft=True) if lane.node_id else "DEFAULT"
        self.actor = actor_class().options(
            name=name,
            namespace=NAMESPACE,
            num_gpus=lane.num_gpus,
            num_cpus=lane.num_cpus,
            scheduling_strategy=strategy,
        ).remote()
        overlay = _env_overlay(env)
        with open(WORKER_SCRIPT, encoding="utf-8") as handle:
            worker = {"path": WORKER_SCRIPT, "source": handle.read()}
        self._start_ref = self.actor.start.remote(argv, overlay, lane.num_gpus > 0, files, worker)
        self._local_node = ray.get_runtime_context().get_node_id()
        self._resources = f"{lane.num_gpus:g} GPU, {lane.num_cpus:g} CPU"
        self._thread = threading.Thread(target=self._pump, name=f"ray-{key[0]}", daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        import ray

        code = -9
        try:
            ready, _ = ray.wait([self._start_ref], timeout=3.0)
            if not ready and not self._killed.is_set():
                self._put({"event": "phase", "phase": f"waiting for Ray to place the actor ({self._resources})"})
            info = ray.get(self._start_ref)
            self._write(f"=== actor on {info['host']} ({info['ip']}, node {info['node_id'][:8]}), "
                        f"CUDA_VISIBLE_DEVICES={info.get('visible')}\n".encode())  # fmt: skip
            if info.get("fatal"):
                self._write(f"=== fatal: {info['fatal']}\n".encode())
                self._put({"event": "fatal", "error": info["fatal"]})
                code = 3
                return
            if info["node_id"] == self._local_node:
                self.pid = info.get("pid")
            node = f"{info['host']} ({info['ip']})"
            pinned = f", CUDA_VISIBLE_DEVICES={info['visible']}" if info.get("visible") is not None else ""
            while True:
                events, log = ray.get(self.actor.events.options(concurrency_group="poll").remote(1.0))
                if log:
                    self._write(log)
                for message in events:
                    if message.get("event") == "exit":
                        code = message.get("code")
                        return
                    if "data" in message:
                        message = self._store_frame(message)
                    if message.get("event") == "fatal":  # say which machine cannot render (and on what)
                        message = {**message, "error": f"node {node}{pinned}: {message.get('error')}"}
                    if message.get("event") == "ready":
                        message = {**message, "node": node, "remote_pid": message.get("pid")}
                        if self.pid is None:
                            message["pid"] = None  # a pid on another machine: nothing to signal here
                    self._put(message)
        except Exception as error:  # RayActorError, ActorDiedError, node loss, ray shut down ...
            self._write(f"=== actor lost: {type(error).__name__}: {' '.join(str(error).split())[:500]}\n".encode())
            code = -9
        finally:
            self.returncode = code
            self._write(f"=== exit {code}\n".encode())
            self._inbox.put((self.key, {"event": "exit", "code": code}))
            self._release()
            with self._log_lock:
                self._log.close()
            self._done.set()

    def _store_frame(self, message: dict) -> dict:
        """Write a shipped frame's bytes to the temporary path the supervisor asked for."""
        data = message.pop("data")
        path = self._frame_paths.pop(message.get("frame"), None)
        if path is None:
            return message
        try:
            with open(path, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as error:
            return {"event": "frame_error", "frame": message.get("frame"),
                    "error": f"cannot write the frame received from the node to {path}: {error.strerror}"}  # fmt: skip
        return {**message, "path": path}

    def _put(self, message: dict) -> None:
        self._inbox.put((self.key, message))

    def _write(self, data: bytes) -> None:
        with self._log_lock:
            if not self._log.closed:
                self._log.write(data)

    def _release(self) -> None:
        """Kill the actor so its GPU goes back to Ray (the worker dies with it)."""
        import ray

        try:
            ray.kill(self.actor, no_restart=True)
        except Exception:
            pass

    def send(self, message: dict) -> None:
        if self.returncode is not None:
            return
        if message.get("cmd") == "render":
            self._frame_paths[message["frame"]] = message["path"]
        try:
            self.actor.send.remote(message)
        except Exception:
            pass  # the polling thread reports the actor's end

    def poll(self) -> int | None:
        return self.returncode

    def kill(self) -> None:
        """Kill the worker's process group on its node, then the actor itself."""
        if self._killed.is_set() or self._done.is_set():
            return
        self._killed.set()
        threading.Thread(target=self._kill, name=f"ray-kill-{self.key[0]}", daemon=True).start()

    def _kill(self) -> None:
        import ray

        try:
            ray.wait([self.actor.stop.remote()], timeout=2.0)
        except Exception:
            pass
        self._release()

    def wait(self, timeout: float | None = None) -> int | None:
        self._done.wait(timeout)
        return self.returncode


def _env_overlay(env: dict[str, str]) -> dict[str, str | None]:
    """What the dispatcher changed in the worker's environment (None: unset), not its whole env."""
    overlay: dict[str, str | None] = {key: value for key, value in env.items() if os.environ.get(key) != value}
    overlay.update({key: None for key in os.environ if key not in env})
    return overlay


class RayFactory:
    """ProcessFactory for the Ray backend: start() runs the lane's worker in a Ray actor."""

    def __init__(self, spec: JobSpec, lanes: list[RayLane], owns_ray: bool = False):
        self.lanes = {lane.name: lane for lane in lanes}
        self.files = {"blend": spec.blend, "output_dir": spec.output_dir}
        self.prefix = f"{ACTOR_PREFIX}{spec.job_id or 'job'}-{os.getpid()}-{int(time.time()) % 100000}"
        self.ship = bool(spec.extra.get("ray_ship_files"))
        self.owns_ray = owns_ray
        self.handles: list[RayWorker] = []

    def start(self, key, argv, env, log_path, inbox) -> RayWorker:
        name, generation = key
        lane = self.lanes[name]
        if self.ship and "blend_ref" not in self.files:
            import ray

            with open(self.files["blend"], "rb") as blend:
                data = blend.read()
            stat = os.stat(self.files["blend"])  # one node-local copy per version of the file, reused on resume
            version = f"{os.path.realpath(self.files['blend'])}:{stat.st_size}:{stat.st_mtime_ns}"
            digest = hashlib.sha256(version.encode()).hexdigest()[:16]
            self.files.update(blend_ref=ray.put(data), blend_size=len(data), ship_key=digest)
        handle = RayWorker(key, argv, env, log_path, inbox, lane, self.files, f"{self.prefix}-{name}-{generation}")
        self.handles.append(handle)
        return handle

    def close(self) -> None:
        """Kill what is left and shut Ray down if this job started or connected it."""
        for handle in self.handles:
            handle.kill()
        for handle in self.handles:
            handle.wait(5.0)
        if self.owns_ray:
            import ray

            ray.shutdown()
            self.owns_ray = False
