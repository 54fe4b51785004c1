"""Run one job to the end: plan lanes, supervise workers, keep status.json current, clean up."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable

from . import jobs, missing_marks
from .devices import DeviceReport
from .disk import disk_stop, first_problem, stop_check_due
from .frame_files import plan_overrides, remove_temp_folders
from .frame_queue import FrameQueue
from .frames import output_path, parse_frames
from .job_phases import JobPhases
from .lanes import Lane, plan_lanes
from .output_guard import OutputGuard
from .output_lock import running_alone
from .preflight import (  # re-exported: callers and tests import these from runner
    MIN_FREE_BYTES,
    TEMP_MARK,
    check_blend,
    check_output_dir,
    clean_stale_temps,
    preflight,
    temp_path_for,
)
from .process import LocalFactory, ProcessFactory, WorkerHandle, worker_command
from .scene_check import check_scene, job_frames, refresh_preflight
from .spec import SpecError
from .status import JobStatus
from .status_text import failure_message
from .supervisor import Supervisor, SupervisorConfig
from .warm_start import WarmStart
from .worker_launch import worker_args, worker_env

__all__ = ["MIN_FREE_BYTES", "TEMP_MARK", "JobRun", "check_blend", "check_output_dir", "clean_stale_temps",
           "preflight", "run_job", "temp_path_for"]  # fmt: skip


class JobRun:
    """One execution of a job folder (a first run or a resume)."""

    def __init__(
        self,
        job_dir: str,
        *,
        factory: ProcessFactory | None = None,
        report: DeviceReport | None = None,
        on_status: Callable[[JobStatus], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        supervisor_config: SupervisorConfig | None = None,
        command_started: float | None = None,
    ):
        self.job_dir = job_dir
        self.spec = jobs.load_spec(job_dir)
        self.factory: ProcessFactory = factory or LocalFactory()
        self.report = report
        self.on_status = on_status or (lambda status: None)
        self.clock = clock
        self.cancel_requested = threading.Event()
        self.extension: str | None = self.spec.frame_extension()
        self.started_wall = time.time()
        self.started = clock()
        self.message: str | None = None
        self.config = supervisor_config or SupervisorConfig(
            hang_timeout=self.spec.hang_timeout,
            first_frame_timeout=self.spec.first_frame_timeout,
            max_lane_failures=self.spec.max_lane_failures,
            backups=not self.spec.extra.get("prepare"),  # a backup copy would kill a kernel compile half-way
        )
        log_fd = os.open(os.path.join(job_dir, "frames.jsonl"), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self.frames_log = os.fdopen(log_fd, "a", encoding="utf-8")
        self.supervisor: Supervisor | None = None
        self.queue = FrameQueue()
        self.lanes: list[Lane] = []
        self.autotune: dict | None = None
        self.replan_choice: dict | None = None
        self.device_type: str | None = None  # set by prepare()
        self.program, self.disk_checked_at, self.autotune_pending = "", 0.0, False
        self.phases = JobPhases(command_started, self.started_wall)  # timeline.json and kernel markers
        self.guard = OutputGuard(self.spec, job_dir)  # the output folder's lock, manifest and GPU leases
        self.previous = jobs.read_status(job_dir)  # the last run's status (its video, on a resume)
        self._queued = lambda why: self.write_status("queued", phase=why)  # waiting for the folder or GPUs
        self.scene: dict = {}  # the scene's facts: cached in the job folder, then the first worker's
        self.missing_now: list[str] = []  # files the scene needs that are missing (they stop the job unless allowed)

    @property
    def sup(self) -> Supervisor:
        """The supervisor prepare() made."""
        if self.supervisor is None:
            raise RuntimeError("JobRun.prepare() has not run")
        return self.supervisor

    @property
    def devices(self) -> DeviceReport:
        """This machine's devices, as preflight found them."""
        if self.report is None:
            raise RuntimeError("JobRun.prepare() has not run")
        return self.report

    @property
    def device(self) -> str:
        return self.device_type or "CPU"

    # -- set-up ----------------------------------------------------------------------------------
    def prepare(self) -> bool:
        """Output folder, frames, lanes, cards (no worker if nothing is left); False: cancelled while queued."""
        device_type, self.report, self.program = preflight(self.spec, self.report)
        self.device_type = device_type
        if not self.guard.claim(self._queued, cancelled=self._cancelled):
            return False
        self._plan_frames()
        if self.queue.finished or self.message:  # nothing left, or the cached pre-flight refused the scene
            return not self.message
        if self.spec.backend == "ray":
            from .ray_backend import prepare_ray  # lanes from the cluster's nodes, one Ray actor each

            self.device_type, ray_lanes, self.factory = prepare_ray(self.spec)
            self.lanes = list(ray_lanes)
        else:
            if self.spec.layout == "auto":
                self._autotune()
            self.lanes = plan_lanes(self.spec, self.report, device_type)
            narrowed = self.guard.lease(self.lanes, self._queued, self._cancelled)  # first come, per card
            if narrowed is None:
                return False
            if narrowed:  # start now on the free cards (this run only; spec.json is unchanged)
                self.spec.gpus, self.lanes = narrowed, plan_lanes(self.spec, self.report, device_type)
        self.supervisor = self._new_supervisor()  # its scene unset: the first worker's pre-flight is checked too
        return True

    def _plan_frames(self) -> None:
        """Under the folder's lock: clear stale temps; plan from cached scene facts (files re-checked) if any."""
        clean_stale_temps(self.spec.output_dir)
        cached = jobs.cached_scene(self.job_dir, self.spec.blend)
        if cached:
            self._on_scene({**cached, "preflight": refresh_preflight(cached.get("preflight"))})

    def _cancelled(self) -> bool:
        return self.cancel_requested.is_set() or os.path.exists(os.path.join(self.job_dir, "cancel.request"))

    def _autotune(self) -> None:
        """Choose the layout now: from the cached scene facts, else provisionally from the machine alone.

        A provisional choice starts the lanes at once (no separate inspection process); when the first
        worker reports the scene and the choice for it differs, the lanes are re-planned (rare: few frames,
        a scene too large for the cards or the host).
        """
        scene = jobs.cached_scene(self.job_dir, self.spec.blend)
        self.autotune_pending = scene is None
        if scene is None:
            count = len(parse_frames(self.spec.frames)) if self.spec.frames else 10**6
            scene = {"frame_start": 1, "frame_end": count, "triangles": 0, "provisional": True}
        self._apply_choice(self._choose(scene))

    def _choose(self, scene: dict) -> dict:
        from . import autotune

        gpus = self.devices.gpus if self.device_type != "CPU" else []
        if self.spec.gpus and gpus:
            gpus = [gpu for lane in plan_lanes(self.spec, self.devices, self.device) for gpu in lane.gpus]
        return autotune.choose(scene, gpus, self.devices.cpu)

    def _apply_choice(self, choice: dict) -> None:
        from .autotune import apply_choice

        self.autotune = choice
        apply_choice(self.spec, choice, cpu=self.device_type == "CPU")

    def _replan(self, choice: dict) -> None:
        """Swap the running lanes for the ones the real scene calls for; frames in flight go back."""
        old = self.sup
        old.shutdown(grace=0)  # the same job goes on at once: no polite quit
        self._apply_choice(choice)
        self.lanes = plan_lanes(self.spec, self.devices, self.device)
        self.supervisor = self._new_supervisor()
        self.sup.scene = old.scene
        self.sup.start()

    def _new_supervisor(self) -> Supervisor:
        return Supervisor(
            self.lanes,
            self.queue,
            start_worker=self._start_worker,
            paths=self._paths,
            config=self.config,
            clock=self.clock,
            on_scene=self._on_scene,
            on_frame=self._log_frame,
            output_problem=lambda: first_problem([self.spec.output_dir, *self._output_folders()]),
        )

    def _output_folders(self) -> list[str]:  # where the scene's File Output nodes write (the worker said)
        return self.scene.get("output_folders") or []

    def _on_scene(self, scene: dict) -> None:
        """The scene's facts (cached, or the first worker's): check its pre-flight, plan frames if not yet."""
        self.scene = scene
        if "blend_mtime" not in scene:
            jobs.save_scene(self.job_dir, self.spec.blend, scene, self.spec.file_format)
        if self.autotune_pending:
            self.autotune_pending = False
            choice = self._choose(scene)
            keys = ("layout", "workers_per_gpu", "gpus_per_worker", "persistent_data", "cpu_lanes", "threads")
            if any(choice.get(key) != (self.autotune or {}).get(key) for key in keys):
                self.replan_choice = choice
            else:
                self.autotune = choice
        preflight = scene.get("preflight") or {"camera": scene.get("camera")}
        self.missing_now = [item["path"] for item in preflight.get("missing") or []]
        try:
            check_scene(self.spec, preflight)
            frames = job_frames(self.spec, scene)
        except SpecError as error:  # missing files, no camera, frames Blender cannot render
            self.message = str(error)
            self.cancel_requested.set()
            return
        extension = self.spec.frame_extension()
        self.extension = scene["file_extension"] if extension is None else extension
        if not self.queue.planned:
            self._plan(frames, several_files=bool(scene.get("extra_outputs") or scene.get("stereo")))

    def _plan(self, frames: list[int], several_files: bool = False) -> None:
        """Done: this job's intact and kept frames (manifest), as frame_files.plan_overrides corrects them."""
        self.phases.stamp("frames_planned", once=True)
        redo, own = plan_overrides(frames, self._final, self.job_dir, several_files, self.missing_now)
        plan = self.guard.classify(frames, self._final, self.extension or "", redo=redo, own=own)
        self.queue.plan(frames, set(plan.done_before) | set(plan.kept))

    def _final(self, frame: int) -> str:
        return output_path(self.spec.output_dir, self.spec.file_pattern, frame, self.extension or "")

    def _paths(self, frame: int, lane: str) -> tuple[str, str]:
        final = self.guard.placeholder(self._final(frame))  # the scene's Placeholders, when on
        return temp_path_for(final, lane, self.spec.job_id), final

    def _start_worker(self, lane: Lane, key: tuple, inbox) -> WorkerHandle:
        argv = worker_command(self.program, self.spec.blend, worker_args(self.spec, lane), self.spec.trust_scripts)
        log_path = os.path.join(self.job_dir, "logs", f"{lane.name}.log")
        handle = self.factory.start(key, argv, worker_env(lane), log_path, inbox)
        if isinstance(self.factory, WarmStart):  # a worker started before the job: when it really started
            self.factory.stamp_spawned(lane.name, self.sup.runs[lane.name].times)
        return handle

    def _log_frame(self, record: dict) -> None:
        self.guard.record(record)  # a frame put in place goes into the folder's manifest
        if record.get("status") == "done":  # remember frames rendered while files were missing
            missing_marks.record(self.spec.output_dir, record["frame"], self.missing_now)
        self.frames_log.write(json.dumps(record) + "\n")
        self.frames_log.flush()
        if self.spec.backend == "local" and self.supervisor is not None:
            run, driver = self.sup.runs.get(str(record.get("lane"))), self.devices.driver
            cache_dir = lambda lane: worker_env(lane)["CUDA_CACHE_PATH"]  # noqa: E731
            self.phases.after_frame(record, run, driver, self.program, cache_dir)

    # -- running ---------------------------------------------------------------------------------
    def run(self) -> JobStatus:
        jobs.write_pid(self.job_dir)
        if not self.prepare() or self.supervisor is None:  # cancelled while queued, or nothing left
            video = self.previous.video if self.previous and self.queue.finished else None
            return self._finish("done" if self.queue.finished else "cancelled", video)
        self.phases.stamp("dispatcher_ready")
        self.sup.start()
        if isinstance(self.factory, WarmStart):
            self.factory.close()  # every lane has its worker: one started early that no lane took goes now
        state, last_write = "running", 0.0
        try:
            while not self.sup.finished:
                self.sup.step(timeout=0.1)
                if self.replan_choice is not None:
                    choice, self.replan_choice = self.replan_choice, None
                    self._replan(choice)
                if self._cancelled():
                    state = "cancelled"
                    break
                stop = self._disk_stop()
                if stop:
                    state, self.message = "failed", stop
                    break
                now = self.clock()
                if self.sup.changed or now - last_write > 2.0:
                    if now - last_write >= 0.2:
                        self.write_status("running")
                        self.sup.changed = False
                        last_write = now
        finally:
            self._kill_workers()
        try:
            return self._finish(state)
        finally:
            self._reap_workers()

    def _finish(self, state: str, video: str | None = None) -> JobStatus:
        """The job's end: folder and GPUs freed, final status written while the killed workers are reaped."""
        self.guard.release()
        if state == "running":
            state = "done" if not self.queue.failed and self.queue.finished else "failed"
            if state == "failed" and not self.message:
                self.message = failure_message(self.sup, self.queue)
        if state == "cancelled" and self.message:
            state = "failed"
        if state == "done" and self.spec.video and not (video and os.path.exists(video)):
            self.write_status("running", phase="encoding video")
            from .video import encode_job

            try:
                video = encode_job(self.job_dir)
            except Exception as error:
                state, self.message = "failed", f"video encoding failed: {error}"
        status = self.write_status(state, phase=state, video=video, finished=True)
        self.frames_log.close()
        return status

    def _disk_stop(self) -> str | None:
        """Why the disk stops the job: a frame could not be written, or (checked every 2 s) it is full."""
        due, self.disk_checked_at = stop_check_due(self.clock(), self.disk_checked_at)
        return disk_stop(self.sup.stopped_for, self.spec.output_dir if due else None)

    def _kill_workers(self) -> None:
        """Stop every worker at once, no temporary file left (their folders go once they are reaped); a local
        worker is killed without a quit, a Ray worker asked to quit first (it removes its node's frame folder)."""
        if self.supervisor is not None:
            self.sup.shutdown(grace=3.0 if self.spec.backend != "local" else 0.0, reap=None)
            clean_stale_temps(self.spec.output_dir)
            self.guard.drop_placeholders(self._final(frame) for frame in [*self.queue.pending, *self.queue.in_flight])

    def _reap_workers(self) -> None:
        """After the final status: wait until every worker is gone, close the backend, write the timeline."""
        if self.supervisor is not None:
            self.sup.reap()
            remove_temp_folders(self.spec.output_dir, self._output_folders())  # their workers are gone now
        self.phases.stamp("workers_stopped")
        self.factory.close()  # Ray: its actors and a Ray it started; a warm start: workers no lane took
        self.phases.finish(self.job_dir, self.supervisor.runs if self.supervisor else None)

    def status(self, state: str, phase: str | None = None, video: str | None = None,
               finished: bool = False) -> JobStatus:  # fmt: skip
        supervisor = self.supervisor
        now = time.time()
        return JobStatus(
            job_id=self.spec.job_id,
            job_dir=self.job_dir,
            blend=self.spec.blend,
            output_dir=self.spec.output_dir,
            state=state,
            phase=phase or (supervisor.phase() if supervisor else "starting"),
            pid=os.getpid(),
            started_at=self.started_wall,
            updated_at=now,
            elapsed=round(self.clock() - self.started, 3),
            eta_seconds=supervisor.eta_seconds() if supervisor and self.queue.planned else None,
            device_type=self.device_type,
            layout=self.spec.layout,
            autotune=self.autotune,
            frames={**self.queue.counts(), **self.guard.counts()} if self.queue.planned or supervisor else {},
            kept_from=self.guard.kept_from(),
            failed_frames={str(frame): error for frame, error in sorted(self.queue.failed.items())},
            lanes=[run.to_status() for run in supervisor.runs.values()] if supervisor else [],
            message=self.message or self.guard.kept_summary(),
            missing_files=None if self.spec.allow_missing else self.missing_now or None,  # the panel's warning box
            video=video,
            finished_at=now if finished else None,
        )

    def write_status(self, state: str, phase: str | None = None, video: str | None = None,
                     finished: bool = False) -> JobStatus:  # fmt: skip
        status = self.status(state, phase, video, finished)
        jobs.write_status(self.job_dir, status)
        self.on_status(status)
        return status


def run_job(job_dir: str, *, handle_signals: bool = True, **options) -> JobStatus:
    """Run a job folder in this process until it ends (one process per job); SIGINT/SIGTERM cancel it."""
    with running_alone(job_dir):
        return _run(JobRun(job_dir, **options), job_dir, handle_signals)


def _run(job: JobRun, job_dir: str, handle_signals: bool) -> JobStatus:
    if handle_signals:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: job.cancel_requested.set())
    try:
        return job.run()
    except SpecError as error:
        job.message = str(error)
        status = job.status("failed", phase="failed", finished=True)
        status.error = str(error)
        jobs.write_status(job_dir, status)
        raise
    finally:
        job.guard.release()
        try:
            os.remove(os.path.join(job_dir, "dispatcher.pid"))
        except OSError:
            pass
