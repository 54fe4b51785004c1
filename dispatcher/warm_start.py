"""`render` starts the job's workers while it still reads the scene, and the job adopts them.

Before a job exists, `render` must know the scene's output rules and pre-flight facts (refusing bad input
with exit 2 and no job folder). Reading them costs a Blender start (~1.5-2 s: import bpy, open the file).
The job's workers pay the same start, and need none of those facts to begin: their lanes come from the
command line and the machine. So in the foreground they start at once, the first one's ``ready`` event
brings the facts (read before anything in the scene was changed), and the job adopts each worker whose
command line and environment came out the same (the frame format, known only from the scene, is sent as
a ``configure`` command). A refused job kills them; a worker that failed or does not match is replaced by
a fresh one. Not used with ``--detach``, ``--layout auto``, ``--queue``, Ray, or cards another job holds
or waits for: there the job starts its workers itself, as before.
"""

from __future__ import annotations

import os
import queue
import tempfile
import time
from dataclasses import dataclass, field

from .lanes import Lane, plan_lanes
from .process import LocalProcess, WorkerHandle, worker_command
from .spec import JobSpec
from .worker_launch import worker_args, worker_env


@dataclass
class WarmWorker:
    lane: Lane
    argv: list[str]
    env: dict[str, str]
    process: LocalProcess
    events: queue.Queue
    seen: list[dict] = field(default_factory=list)  # events read while waiting for the facts; handed on


class WarmStart:
    """Workers started early (a ProcessFactory): ``start`` adopts a matching one, else spawns as usual."""

    def __init__(self, spec: JobSpec, program: str, lanes: list[Lane], report, log_dir: str) -> None:
        self.report = report  # the device report the lanes came from: the job plans with the same one
        self.log_dir = log_dir
        os.makedirs(log_dir, mode=0o700, exist_ok=True)
        self.spawned: dict[str, float] = {}  # lane -> when its adopted worker was started
        self.workers: dict[str, WarmWorker] = {}
        try:
            for lane in lanes:  # the frame format comes later (configure): the scene may decide it
                self.workers[lane.name] = self._spawn(spec, program, lane)
        except BaseException:
            self.close()  # the ones already started go, with their logs
            raise

    def _spawn(self, spec: JobSpec, program: str, lane: Lane) -> WarmWorker:
        argv = _without_format(worker_command(program, spec.blend, worker_args(spec, lane), spec.trust_scripts))
        env = worker_env(lane)
        events: queue.Queue = queue.Queue()
        log = os.path.join(self.log_dir, f"{lane.name}.log")
        return WarmWorker(lane, argv, env, LocalProcess((lane.name, 0), argv, env, log, events), events)

    def scene_facts(self, timeout: float = 120.0) -> dict | None:
        """The output facts and pre-flight of the first worker to be ready, as ``read_output_facts`` returns
        them; None when every worker failed first (the caller reads them itself and names the problem)."""
        deadline = time.monotonic() + timeout
        live = list(self.workers.values())
        while live and time.monotonic() < deadline:
            arrived = [(warm, warm.events.get_nowait()[1]) for warm in live if not warm.events.empty()]
            if not arrived:
                time.sleep(0.01)  # every lane looked at each round, however many there are
            for warm, message in arrived:  # every one kept for the job before any is looked at
                warm.seen.append(message)
            for warm, message in arrived:
                if message.get("event") == "ready" and isinstance(message.get("output"), dict):
                    preflight = (message.get("scene") or {}).get("preflight")
                    return {"event": "output", **message["output"], "preflight": preflight}
                if message.get("event") in ("fatal", "exit"):
                    live.remove(warm)
        return None

    def start(self, key: tuple, argv: list[str], env: dict[str, str], log_path: str,
              inbox: queue.Queue) -> WorkerHandle:  # fmt: skip
        """The lane's warm worker when it is alive and was started exactly so; else a new worker."""
        warm = self.workers.pop(key[0], None)
        file_format = _format_of(argv)
        if warm is not None and warm.process.poll() is None and warm.env == env and _without_format(argv) == warm.argv:
            if file_format:
                warm.process.send({"cmd": "configure", "file_format": file_format})
            note = f"; frames saved as {file_format}" if file_format else ""
            warm.process.adopt(key, inbox, log_path, note, earlier=warm.seen)  # what scene_facts read goes first
            self.spawned[key[0]] = warm.process.started_at
            return warm.process
        if warm is not None:
            _discard(warm)
        return LocalProcess(key, argv, env, log_path, inbox)

    def stamp_spawned(self, lane: str, times: dict) -> None:
        """The job's timeline: an adopted worker was spawned when the command started it, not when adopted."""
        if lane in self.spawned:
            times["spawned"] = self.spawned.pop(lane)

    def close(self) -> None:
        """Kill the workers no job adopted (a refused job, lanes that changed) and remove their logs."""
        for warm in self.workers.values():
            _discard(warm)
        self.workers.clear()
        parent = os.path.dirname(self.log_dir)
        for folder in [self.log_dir, *([parent] if os.path.basename(parent) == ".warm" else [])]:  # empty now
            try:
                os.rmdir(folder)
            except OSError:
                break


def _format_of(argv: list[str]) -> str | None:
    return argv[argv.index("--file-format") + 1] if "--file-format" in argv[:-1] else None


def _without_format(argv: list[str]) -> list[str]:
    if "--file-format" not in argv[:-1]:
        return argv
    index = argv.index("--file-format")
    return argv[:index] + argv[index + 2 :]


def _discard(warm: WarmWorker) -> None:
    warm.process.kill()
    warm.process.wait(5.0)
    warm.process.close()
    try:
        os.remove(warm.process.log_path)
    except OSError:
        pass


def warm_start(spec: JobSpec, detach: bool) -> WarmStart | None:
    """Start the job's workers now when that is safe (see the module's docstring); None otherwise."""
    if detach or spec.backend != "local" or spec.layout == "auto" or spec.wait_for_output:
        return None
    from .devices import best_device_type, detect_gpus
    from .jobs import default_jobs_root, make_private_dir
    from .preflight import check_blend
    from .process import default_program

    try:
        check_blend(spec.blend)
        program = spec.blender or default_program()
        report = detect_gpus()
        device_type = spec.device_type or best_device_type(report)
        lanes = plan_lanes(spec, report, device_type)
        if not program or _cards_wanted_elsewhere(lanes):
            return None
        root = make_private_dir(os.path.join(default_jobs_root(), ".warm"))
        _remove_orphans(root)
        return WarmStart(spec, program, lanes, report, tempfile.mkdtemp(prefix=f"warm-{os.getpid()}-", dir=root))
    except Exception:  # anything wrong here is found again, and named, by the checks that follow
        return None


def _cards_wanted_elsewhere(lanes: list[Lane]) -> bool:
    """Another live job holds one of these cards, or waits for cards: this job may have to queue."""
    from .jobs import default_jobs_root
    from .leases import CardLeases

    cards = [gpu.uuid for lane in lanes for gpu in lane.gpus]
    if not cards:
        return False
    leases = CardLeases(default_jobs_root(), "", "")
    return bool(leases.queue()) or any(leases.holder(card) for card in cards)


def _remove_orphans(root: str) -> None:
    """Folders of render commands that died before they could clean up (SIGTERM, SIGKILL, a closed terminal;
    their workers died with them): ``warm-<pid>-*`` whose process is gone."""
    import shutil

    import psutil

    for name in os.listdir(root):
        pid = name.split("-")[1] if name.startswith("warm-") and name.count("-") >= 2 else ""
        if pid.isdigit() and not psutil.pid_exists(int(pid)):
            shutil.rmtree(os.path.join(root, name), ignore_errors=True)
