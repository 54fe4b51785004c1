"""The Ray backend's actor: runs on a Ray node, starts the headless worker there and relays its events.

Standard library only (ray is imported inside the methods that run on the node): the class is shipped to
the nodes by value (cloudpickle), so nodes need Ray and Blender, not this package.
"""

from __future__ import annotations

import json
import os
import queue
import socket
import sys
import threading

DEVICE_SELECTORS = ("CUDA_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES", "ONEAPI_DEVICE_SELECTOR")


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
            process = subprocess.Popen(
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
        self._process = process
        self._started.set()
        reader = threading.Thread(target=self._read_log, args=(process.stderr,), name="log", daemon=True)
        reader.start()
        for raw in process.stdout or ():
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
        code = process.wait()
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

    def _read_log(self, stream) -> None:
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


def worker_sources(path: str, siblings: tuple[str, ...]) -> dict:
    """What a node needs to run the worker: its path and source, and the scripts it loads beside it."""
    def read(name: str) -> str:
        with open(name, encoding="utf-8") as handle:
            return handle.read()

    return {"path": path, "source": read(path), "siblings": {os.path.basename(name): read(name) for name in siblings}}


def _local_worker_script(worker: dict) -> str:
    """The worker script on this node: the dispatcher's own files when visible, else a cached copy of
    worker.py and the scripts it loads beside it, in one folder per version."""
    import hashlib
    import tempfile

    path, source, siblings = worker["path"], worker["source"], worker.get("siblings") or {}
    folder = os.path.dirname(path)
    if all(_same(os.path.join(folder, name), text) for name, text in [("worker.py", source), *siblings.items()]):
        return path
    digest = hashlib.sha256("".join([source, *sorted(siblings.values())]).encode()).hexdigest()[:16]
    user = os.getuid() if hasattr(os, "getuid") else 0
    folder = os.path.join(tempfile.gettempdir(), f"grf-worker-{user}", digest)
    os.makedirs(folder, mode=0o700, exist_ok=True)
    for name, text in [("worker.py", source), *siblings.items()]:
        copy = os.path.join(folder, name)
        if not os.path.exists(copy):
            partial = f"{copy}.{os.getpid()}.tmp"
            with open(partial, "w", encoding="utf-8") as handle:
                handle.write(text)
            os.replace(partial, copy)
    return os.path.join(folder, "worker.py")


def _same(path: str, text: str) -> bool:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read() == text
    except OSError:
        return False
