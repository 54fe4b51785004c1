"""Command line: python -m dispatcher devices|render|status|cancel|resume|encode|demo|bench|report|serve."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from . import job_files, jobs
from .devices import detect_gpus
from .output_rules import add_output_options
from .spec import DEVICE_TYPES, LAYOUTS, JobSpec, SpecError
from .status_text import ProgressPrinter, status_table

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_CANCELLED = 0, 1, 2, 130


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The CLI; the optional commands' modules are imported only when ``command`` names them (start-up)."""
    parser = argparse.ArgumentParser(prog="python -m dispatcher", description="Render Blender animations on every GPU.")
    commands = parser.add_subparsers(dest="command", required=True)

    devices = commands.add_parser("devices", help="list GPUs (NVML), their compiled kernels, and CPU facts")
    devices.add_argument("--json", action="store_true")
    devices.add_argument("--blender", help="worker program whose Cycles kernels to check (default: as render)")

    render = commands.add_parser("render", help="render a .blend on every GPU")
    render.add_argument("blend")
    add_render_options(render)

    run_job = commands.add_parser("run-job", help="run an existing job folder in this process (used by --detach)")
    run_job.add_argument("job")
    run_job.add_argument("--quiet", action="store_true")

    for name, text in (("status", "show a job's status"), ("cancel", "stop a job and its workers")):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("job", help="job folder or job id")
        sub.add_argument("--json", action="store_true")
    resume = commands.add_parser("resume", help="render what a stopped job is missing")
    resume.add_argument("job")
    resume.add_argument("--detach", action="store_true")
    resume.add_argument("--json", action="store_true")

    encode = commands.add_parser("encode", help="encode a job's frames into an MP4")
    encode.add_argument("job")
    encode.add_argument("--out")
    encode.add_argument("--fps", type=float)

    demo = commands.add_parser("demo", help="build a demo scene, render it on all GPUs, write an MP4")
    demo.add_argument("--out", default="demo_out")
    demo.add_argument("--frames", type=int, default=48)
    demo.add_argument("--size", default="320x180")
    demo.add_argument("--samples", type=int, default=16)

    for name, text in OPTIONAL.items():
        if command in (None, name):
            _add_optional(commands, name, text, f"dispatcher.{MODULES.get(name, name)}")
        else:
            commands.add_parser(name, help=text)
    return parser


MODULES = {"jobs": "job_list"}  # a command whose module is not named after it
OPTIONAL = {
    "jobs": "running, queued and recent jobs (state, progress, cards, output)",
    "bench": "benchmark approaches and print a table",
    "prepare": "compile GPU kernels ahead of the first render",
    "report": "per-lane timeline and summary of a finished job",
    "serve": "web dashboard of the jobs (needs the 'web' extra)",
}


def _add_optional(commands, name: str, text: str, module: str) -> None:
    import importlib

    try:
        target = importlib.import_module(module)
        add_arguments, handler = target.add_arguments, target.main
    except (ImportError, AttributeError):
        return  # the optional part is not installed here
    sub = commands.add_parser(name, help=text)
    add_arguments(sub)
    sub.set_defaults(handler=handler)


def add_render_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--frames", "-f", help="e.g. 1-250, 1-100x2, 5,9,12-20 (default: the scene's range)")
    add_output_options(parser)  # -o, --pattern, --overwrite / --skip-existing, --queue
    parser.add_argument("--format", dest="file_format", help="PNG, OPEN_EXR, JPEG, TIFF (default: the scene's)")
    parser.add_argument("--device", dest="device_type", type=str.upper, help=f"{', '.join(DEVICE_TYPES)}")
    parser.add_argument("--layout", default="per-card", choices=LAYOUTS)
    parser.add_argument("--gpus", help="comma list of GPU indices or UUIDs (default: all)")
    parser.add_argument("--gpus-per-worker", type=int, default=1)
    parser.add_argument("--workers-per-gpu", type=int, default=1)
    parser.add_argument("--cpu-lane", action="store_true", help="add a CPU lane beside the GPU lanes")
    parser.add_argument("--cpu-lanes", type=int, default=0, help="CPU lanes when rendering on the CPU")
    parser.add_argument("--threads", type=int, help="threads per worker")
    parser.add_argument("--no-persistent-data", dest="persistent_data", action="store_false")
    parser.add_argument("--blender", help="Blender binary or Python with bpy that runs the workers")
    parser.add_argument("--trust", action="store_true", help="let scripts inside the .blend run")
    parser.add_argument("--allow-missing", action="store_true",
                        help="render even when files the scene needs (textures, libraries...) are missing")  # fmt: skip
    parser.add_argument("--samples", type=int, help="override the scene's Cycles samples")
    parser.add_argument("--resolution", help="override the resolution, WxH")
    parser.add_argument("--hang-timeout", type=float, default=600.0, help="seconds without progress (default 600)")
    parser.add_argument("--first-frame-timeout", type=float, default=3600.0,
                        help="a GPU lane's first frame may compile kernels this long (default 3600)")  # fmt: skip
    parser.add_argument("--video", action="store_true", help="encode an MP4 when all frames are done")
    parser.add_argument("--notify-url", help="POST a JSON summary to this http(s) URL when the job ends")
    parser.add_argument("--job-dir", help="job folder (default: a new one under the user cache)")
    parser.add_argument("--detach", action="store_true", help="return at once; the job runs on in the background")
    parser.add_argument("--backend", default="local", choices=("local", "ray"))
    parser.add_argument("--address", dest="ray_address", help="Ray cluster address (default: a local Ray)")
    parser.add_argument(
        "--ship-files", action="store_true", help="Ray without shared storage: send the .blend and frames through Ray"
    )
    parser.add_argument("--json", action="store_true", help="print the final status as JSON")
    parser.add_argument("--quiet", action="store_true")


def spec_from_args(args: argparse.Namespace) -> JobSpec:
    resolution = None
    if args.resolution:
        try:
            resolution = tuple(int(value) for value in args.resolution.lower().split("x"))
            if len(resolution) != 2:
                raise ValueError
        except ValueError:
            raise SpecError(f"resolution must look like 1920x1080, not {args.resolution!r}") from None
    return JobSpec(
        blend=os.path.abspath(args.blend),
        output_dir=os.path.abspath(args.output) if args.output else "",  # "": the scene's (apply_scene_output)
        frames=args.frames,
        file_pattern=args.pattern or "frame_####",
        file_format=args.file_format,
        device_type=args.device_type,
        layout=args.layout,
        gpus=[gpu for gpu in args.gpus.split(",") if gpu] if args.gpus else None,
        gpus_per_worker=args.gpus_per_worker,
        workers_per_gpu=args.workers_per_gpu,
        cpu_lane=args.cpu_lane,
        cpu_lanes=args.cpu_lanes,
        threads=args.threads,
        persistent_data=args.persistent_data,
        overwrite=args.policy or "overwrite",
        wait_for_output=args.queue,
        blender=args.blender,
        trust_scripts=args.trust,
        allow_missing=args.allow_missing,
        samples=args.samples,
        resolution=resolution,
        hang_timeout=args.hang_timeout,
        first_frame_timeout=args.first_frame_timeout,
        video=args.video,
        notify_url=args.notify_url,
        backend=args.backend,
        ray_address=args.ray_address,
        extra={"ray_ship_files": True} if getattr(args, "ship_files", False) else {},
    ).validate()


def resolve_job(job: str) -> str:
    path = jobs.job_path(job)
    if os.path.isdir(path):
        return os.path.abspath(path)
    raise SpecError(f"no such job: {job}")


# -- commands -------------------------------------------------------------------------------------
def cmd_devices(args) -> int:
    from .kernels import kernel_status
    from .process import default_program
    from .visible import apply_visibility, hidden_lines

    report = apply_visibility(detect_gpus())  # only the cards this environment allows; the others hidden
    program = args.blender or default_program()
    compiled = kernel_status(report, program) if report.gpus and program else []
    if args.json:
        print(json.dumps({**report.to_dict(), "kernels": compiled}, indent=1))
        return EXIT_OK
    if not report.gpus:
        print(f"No NVIDIA GPU: {report.reason}")
    for gpu in report.gpus:
        extras = []
        if gpu.utilization_pct is not None:
            extras.append(f"load {gpu.utilization_pct}%")
        if gpu.temperature_c is not None:
            extras.append(f"{gpu.temperature_c}°C")
        print(
            f"GPU {gpu.index}: {gpu.name}  {gpu.memory_used_mb}/{gpu.memory_total_mb} MiB  "
            f"{' '.join(extras)}  {gpu.uuid}  PCI {gpu.pci_bus_id}"
        )
    for line in hidden_lines(report):
        print(line)
    for status in compiled:
        if status["compiled"] is not True:
            print(f"GPU {status['index']}: {status['why']}" + (" (python -m dispatcher prepare)" * (
                status["compiled"] is False)))  # fmt: skip
    cpu = report.cpu
    print(f"CPU: {cpu.get('usable_cores', cpu.get('logical_cores'))} usable cores, "
          f"{cpu.get('memory_available_mb', '?')} MiB RAM free")  # fmt: skip
    return EXIT_OK


def cmd_render(args) -> int:
    from .warm_start import warm_start

    spec = spec_from_args(args)
    warm = warm_start(spec, args.detach)  # the job's workers start while the scene is read (warm_start.py)
    try:
        return _render(spec, args, warm)
    finally:
        if warm is not None:
            warm.close()


def _render(spec, args, warm) -> int:
    from .output_rules import apply_scene_output, refuse_busy_output

    # the scene's output path, Overwrite and Placeholders, and its pre-flight facts: one Blender run
    spec, scene_facts = apply_scene_output(spec, args, warm.scene_facts() if warm else None)
    refuse_busy_output(spec)
    if spec.backend == "ray":
        from .ray_backend import check_ray

        check_ray()
    from .lanes import plan_lanes
    from .runner import preflight
    from .scene_check import check_scene

    check_scene(spec, scene_facts)  # missing files, no camera, frames Blender cannot render
    created = _missing_folders(spec.output_dir)
    try:  # preflight creates the output folder; a refusal after it leaves none behind
        device_type, report, _program = preflight(spec, warm.report if warm else None)
        if spec.backend == "local":
            plan_lanes(spec, report, device_type)  # a GPU that is not there is bad input: refuse before any job
        job_dir = jobs.create_job(spec, job_dir=args.job_dir)
    except SpecError:
        for folder in reversed(created):
            try:
                os.rmdir(folder)  # only if still empty
            except OSError:
                break
        raise
    if args.detach:
        pid = jobs.launch_detached(job_dir)
        print(f"job {spec.job_id} started in the background (pid {pid})")
        print(f"  status: python -m dispatcher status {job_dir}")
        print(f"  cancel: python -m dispatcher cancel {job_dir}")
        return EXIT_OK
    return run_in_foreground(job_dir, quiet=args.quiet, as_json=args.json, report=report, factory=warm)


def _missing_folders(path: str) -> list[str]:
    """``path`` and its ancestors that do not exist yet, outermost first."""
    missing: list[str] = []
    while path and not os.path.exists(path) and os.path.dirname(path) != path:
        missing.insert(0, path)
        path = os.path.dirname(path)
    return missing


def run_in_foreground(job_dir: str, quiet: bool = False, as_json: bool = False, report=None, factory=None) -> int:
    from .notify import notify_job_end
    from .runner import run_job
    from .timeline import process_start_time

    printer = ProgressPrinter(enabled=not quiet and not as_json)
    started = time.time()
    try:
        status = run_job(job_dir, on_status=printer, report=report, command_started=process_start_time(),
                         factory=factory)
    finally:
        notify_job_end(job_dir, since=started)  # once this run has ended the job; never raises
    printer.close()
    if as_json:
        print(json.dumps(status.to_json(), indent=1))
    elif not quiet:
        print(status_table(status))
    return {"done": EXIT_OK, "cancelled": EXIT_CANCELLED}.get(status.state, EXIT_FAILED)


def cmd_run_job(args) -> int:
    return run_in_foreground(resolve_job(args.job), quiet=args.quiet)


def cmd_status(args) -> int:
    job_dir = resolve_job(args.job)
    jobs.load_spec(job_dir)
    status = job_files.read_status(job_dir)
    if status is None:
        print(f"job {os.path.basename(job_dir)}: no status yet")
        return EXIT_OK
    if not status.is_terminal and not jobs.is_running(job_dir):
        status.state, status.phase = "stopped", "dispatcher not running (resume to continue)"
    print(json.dumps(status.to_json(), indent=1) if args.json else status_table(status))
    return EXIT_OK


def cmd_cancel(args) -> int:
    job_dir = resolve_job(args.job)
    jobs.load_spec(job_dir)
    running = jobs.is_running(job_dir)
    status = None if running else job_files.read_status(job_dir)  # a running job is stopped whatever its status says
    state = status.state if status else None
    if status is not None and status.is_terminal:
        print(f"job {os.path.basename(job_dir)} had already finished ({state}); nothing to cancel")
        return EXIT_OK
    stopped = jobs.cancel_job(job_dir)
    print(f"job {os.path.basename(job_dir)}: {'cancelled' if stopped else 'still stopping'}")
    return EXIT_OK if stopped else EXIT_FAILED


def cmd_resume(args) -> int:
    from .process import default_program
    from .scene_check import check_scene, known_facts

    job_dir = resolve_job(args.job)
    jobs.prepare_resume(job_dir)
    spec = jobs.load_spec(job_dir)
    program = spec.blender or default_program()
    if program and os.path.exists(spec.blend):  # a file that is gone is named by the job itself
        check_scene(spec, known_facts(job_dir, spec, program))  # a library lost since the job was made: exit 2
    if args.detach:
        pid = jobs.resume_job(job_dir)
        print(f"job {os.path.basename(job_dir)} resumed in the background (pid {pid})")
        return EXIT_OK
    jobs.prepare_resume(job_dir)
    return run_in_foreground(job_dir, as_json=args.json)


def cmd_encode(args) -> int:
    from .video import encode_job

    path = encode_job(resolve_job(args.job), output=args.out, fps=args.fps)
    print(path)
    return EXIT_OK


def cmd_demo(args) -> int:
    from .blender_scripts import DEMO_SCENE
    from .process import blender_command, default_program

    program = default_program()
    if not program:
        raise SpecError("the demo needs bpy (make demo installs it) or a Blender binary on PATH")
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    blend = os.path.join(out, "demo.blend")
    build_args = ["--out", blend, "--frames", str(args.frames), "--size", args.size, "--samples", str(args.samples)]
    argv = blender_command(program, DEMO_SCENE, build_args)
    print(f"building demo scene {blend} ...")
    subprocess.run(argv, check=True, capture_output=True)
    report = detect_gpus()
    where = f"{len(report.gpus)} GPU lane(s)" if report.gpus else f"CPU lanes (no GPU: {report.reason})"
    print(f"rendering {args.frames} frames on {where}")
    spec = JobSpec(blend=blend, output_dir=os.path.join(out, "frames"), video=True, job_id="demo").validate()
    job_dir = jobs.create_job(spec, job_dir=os.path.join(out, "job"))
    code = run_in_foreground(job_dir)
    status = jobs.read_status(job_dir)
    if status and status.video:
        print(f"video: {status.video}")
    return code


HANDLERS = {
    "devices": cmd_devices,
    "render": cmd_render,
    "run-job": cmd_run_job,
    "status": cmd_status,
    "cancel": cmd_cancel,
    "resume": cmd_resume,
    "encode": cmd_encode,
    "demo": cmd_demo,
}


def main(argv: list[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else argv
    command = next((word for word in words if not word.startswith("-")), None)
    args = build_parser(command).parse_args(argv)
    handler = getattr(args, "handler", None) or HANDLERS[args.command]
    try:
        return handler(args)
    except SpecError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenPipeError:  # `status JOB | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit flush does not fail again
        return EXIT_OK
    except KeyboardInterrupt:
        print("cancelled", file=sys.stderr)
        return EXIT_CANCELLED
