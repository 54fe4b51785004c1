"""Ray backend: the same lanes, frame queue and worker script, with each lane run by a Ray actor.

Design:
- Lanes are planned per Ray node (ray_lanes.py) from ``ray.nodes()`` (each node's GPU and CPU counts): one lane per
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
- The actor class (ray_actor.py) is shipped to the nodes by value (cloudpickle) and uses only the
  standard library, and the worker script's source travels with it, so nodes need Ray and Blender (same
  Python and Ray version as the dispatcher), not this package.
"""

from __future__ import annotations

import hashlib
import os
import socket
import sys
import threading
import time
from typing import Any

from . import ray_actor
from .blender_scripts import FRAME_OUTPUTS, PREFLIGHT_SCENE
from .process import WORKER_SCRIPT
from .ray_actor import LaneActor
from .ray_lanes import RayLane, cluster_device_type, cluster_nodes, plan_ray_lanes
from .spec import JobSpec, SpecError

WORKER_SIBLINGS = (PREFLIGHT_SCENE, FRAME_OUTPUTS)  # loaded by path beside worker.py

__all__ = ["LaneActor", "RayFactory", "RayLane", "RayWorker", "check_ray", "cluster_device_type", "plan_ray_lanes",
           "prepare_ray"]  # fmt: skip

INSTALL_HINT = "pip install 'ray[default]>=2.9' (or: make ray)"
NAMESPACE = "gpu-render-farm"
ACTOR_PREFIX = "grf-"
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
    options: dict[str, Any] = {"namespace": NAMESPACE, "log_to_driver": False, "configure_logging": False}
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


_ACTOR_CLASS = None


def actor_class():
    """LaneActor as a Ray actor class, pickled by value so nodes need not have this package."""
    global _ACTOR_CLASS
    if _ACTOR_CLASS is None:
        import ray
        from ray import cloudpickle

        cloudpickle.register_pickle_by_value(ray_actor)
        # Ray's type stubs do not list the concurrency options of ray.remote, which Ray accepts
        remote = ray.remote(max_restarts=0, max_concurrency=1, concurrency_groups={"poll": 1})  # type: ignore[call-overload]
        _ACTOR_CLASS = remote(LaneActor)
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
        worker = ray_actor.worker_sources(WORKER_SCRIPT, WORKER_SIBLINGS)  # worker.py and the scripts it loads
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
        frame = message.get("frame")
        path = self._frame_paths.pop(frame, None) if isinstance(frame, int) else None
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

    def close(self) -> None:
        """Kill the actor (its GPU goes back to Ray); the polling thread does so too when it ends."""
        self._release()


def _env_overlay(env: dict[str, str]) -> dict[str, str | None]:
    """What the dispatcher changed in the worker's environment (None: unset), not its whole env."""
    overlay: dict[str, str | None] = {key: value for key, value in env.items() if os.environ.get(key) != value}
    overlay.update({key: None for key in os.environ if key not in env})
    return overlay


class RayFactory:
    """ProcessFactory for the Ray backend: start() runs the lane's worker in a Ray actor."""

    def __init__(self, spec: JobSpec, lanes: list[RayLane], owns_ray: bool = False):
        self.lanes = {lane.name: lane for lane in lanes}
        self.files: dict[str, Any] = {"blend": spec.blend, "output_dir": spec.output_dir}
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
