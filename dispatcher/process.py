"""Worker processes: start one in its own process group, talk JSON lines, kill the whole group."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from typing import Protocol

from .blender_scripts import WORKER as WORKER_SCRIPT


class WorkerHandle(Protocol):
    """What the supervisor needs from a running worker: LocalProcess, ray_backend.RayWorker, test fakes."""

    @property
    def pid(self) -> int | None:
        """The worker's pid on this machine (None when it runs elsewhere or has not said yet)."""

    def send(self, message: dict) -> None:
        """Send one command; a dead worker is not an error here (its exit event tells)."""

    def poll(self) -> int | None:
        """The exit code once the worker ended, else None."""

    def kill(self) -> None:
        """End the worker and everything it started, now."""

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait up to ``timeout`` seconds for the end; the exit code, or None if still running."""

    def close(self) -> None:
        """Release what the handle holds (pipes, a Ray actor) once the worker is done with."""


class ProcessFactory(Protocol):
    def start(
        self, key: tuple, argv: list[str], env: dict[str, str], log_path: str, inbox: queue.Queue
    ) -> WorkerHandle:
        """Start a worker; its events go to ``inbox`` as (key, message); exit as {"event": "exit"}."""

    def close(self) -> None:
        """Release what the factory holds once the job ended (the Ray backend: actors, a Ray it started)."""


class LocalProcess:
    """A worker subprocess in a new session, so its whole process group can be killed at once."""

    def __init__(self, key: tuple, argv: list[str], env: dict[str, str], log_path: str, inbox: queue.Queue):
        self.key = key
        self._inbox = inbox
        self._route = threading.Lock()  # key and inbox change together when a warm worker is adopted
        self.log_path = log_path
        self.started_at = time.time()
        self._log = open(log_path, "ab", buffering=0)  # noqa: SIM115 - closed by the reader thread
        os.chmod(log_path, 0o600)
        self._log.write(f"\n=== start {' '.join(argv)}\n".encode())
        self._process = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=env,
            start_new_session=sys.platform != "win32",
            close_fds=True,
        )
        self.pid: int | None = self._process.pid
        if self._process.stdin is None or self._process.stdout is None:
            raise RuntimeError("worker started without pipes")
        self._stdin, self._stdout = self._process.stdin, self._process.stdout
        self._reader = threading.Thread(target=self._read, name=f"worker-{key[0]}", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for raw in self._stdout:
            line = raw.decode("utf-8", "replace").strip()
            if not line:
                continue
            try:
                message = json.loads(line)
            except json.JSONDecodeError:
                self._log.write(raw)  # Blender's own banner before the worker took over stdout
                continue
            if isinstance(message, dict) and "event" in message:
                self._post(message)
        code = self._process.wait()
        self._log.write(f"=== exit {code}\n".encode())
        self._log.close()
        with self._route:
            detail = last_error_line(self.log_path)
        self._post({"event": "exit", "code": code, "detail": detail})

    def _post(self, message: dict) -> None:
        with self._route:
            self._inbox.put((self.key, message))

    def adopt(self, key: tuple, inbox: queue.Queue, log_path: str, note: str = "", earlier: list | None = None) -> None:
        """A job takes over a worker started before its folder existed (warm_start.py): the events it sent
        so far (``earlier``: those already read from its queue) and every later one go to ``inbox`` under
        ``key``; its log moves to ``log_path``."""
        with self._route:
            waiting = list(earlier or [])
            while True:
                try:
                    waiting.append(self._inbox.get_nowait()[1])
                except queue.Empty:
                    break
            try:
                os.makedirs(os.path.dirname(log_path) or ".", exist_ok=True)
                os.replace(self.log_path, log_path)  # the open log follows its file
                self.log_path = log_path
            except OSError:  # another file system: the log stays where it is, the job's log says where
                with open(log_path, "a", encoding="utf-8") as pointer:
                    pointer.write(f"=== warm worker, its log: {self.log_path}\n")
            self.key, self._inbox = key, inbox
            try:
                self._log.write(f"=== adopted by the job{note}\n".encode())
            except ValueError:  # it has just exited: its exit event says so
                pass
            for message in waiting:
                inbox.put((key, message))

    def send(self, message: dict) -> None:
        try:
            self._stdin.write((json.dumps(message) + "\n").encode())
            self._stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            pass  # the exit event tells the supervisor

    def poll(self) -> int | None:
        return self._process.poll()

    def kill(self) -> None:
        """SIGKILL the worker's whole process group (Blender and anything it started)."""
        if self._process.poll() is None:
            kill_group(self._process.pid)
        try:
            self._stdin.close()
        except OSError:
            pass

    def wait(self, timeout: float | None = None) -> int | None:
        try:
            return self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def close(self) -> None:
        """Close the command pipe (a worker still running exits when its stdin closes)."""
        try:
            self._stdin.close()
        except OSError:
            pass


def last_error_line(log_path: str) -> str | None:
    """The line that most likely says why a worker ended: the last 'Error' line of its latest run."""
    try:
        with open(log_path, "rb") as handle:
            handle.seek(max(0, os.path.getsize(log_path) - 8192))
            tail = handle.read().decode("utf-8", "replace")
    except OSError:
        return None
    lines = [line.strip() for line in tail.split("=== start")[-1].splitlines()[1:]]
    lines = [line for line in lines if line and not line.startswith("===")]
    errors = [line for line in lines if "error" in line.lower()]
    found = errors or lines
    return found[-1] if found else None


def kill_group(pid: int, sig: int = signal.SIGKILL) -> None:
    if sys.platform == "win32":
        subprocess.run(["taskkill", "/F", "/T", "/PID", str(pid)], capture_output=True, check=False)
        return
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


class LocalFactory:
    def start(
        self, key: tuple, argv: list[str], env: dict[str, str], log_path: str, inbox: queue.Queue
    ) -> WorkerHandle:
        return LocalProcess(key, argv, env, log_path, inbox)

    def close(self) -> None:
        """Nothing to release: each worker is reaped by the supervisor."""


def is_python_program(program: str) -> bool:
    """A Python with bpy (runs worker.py itself) rather than a Blender binary."""
    name = os.path.basename(program).lower()
    return "python" in name or os.path.realpath(program) == os.path.realpath(sys.executable)


def default_program() -> str | None:
    """The program that runs workers: $GRF_BLENDER, this Python when it has bpy, or blender on PATH."""
    import importlib.util
    import shutil

    if os.environ.get("GRF_BLENDER"):
        return os.environ["GRF_BLENDER"]
    if importlib.util.find_spec("bpy") is not None:
        return sys.executable
    return shutil.which("blender")


def blender_command(
    program: str, script: str, args: list[str], *, blend: str | None = None, autoexec: bool | None = None
) -> list[str]:
    """argv that runs a bpy script (one of ``blender_scripts``) with ``args`` after ``--``.

    A Python with bpy: ``python script -- args``. A Blender binary: ``blender -b --factory-startup
    [--enable-autoexec|--disable-autoexec] [blend] --python script -- args`` (no autoexec flag when None).
    """
    if is_python_program(program):
        return [program, script, "--", *args]
    flags = [] if autoexec is None else ["--enable-autoexec" if autoexec else "--disable-autoexec"]
    return [program, "-b", "--factory-startup", *flags, *([blend] if blend else []), "--python", script, "--", *args]


def worker_command(program: str, blend: str, worker_args: list[str], trust: bool = False) -> list[str]:
    """argv for one worker; Blender binaries get --factory-startup and --disable-autoexec."""
    if is_python_program(program):
        trusted = ["--trust"] if trust else []
        return blender_command(program, WORKER_SCRIPT, ["--blend", blend, *worker_args, *trusted])
    return blender_command(program, WORKER_SCRIPT, worker_args, blend=blend, autoexec=trust)


def spawn_logged(argv: list[str], env: dict[str, str], log_path: str) -> subprocess.Popen:
    """A process in its own session (kill_group ends it), stdout and stderr appended to ``log_path``."""
    os.makedirs(os.path.dirname(log_path) or ".", exist_ok=True)
    with open(log_path, "ab") as log:
        return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def kill_and_reap(process: subprocess.Popen) -> None:
    """SIGKILL a process started by spawn_logged (its whole group) and wait for it."""
    if process.poll() is None:
        kill_group(process.pid)
        process.wait()
