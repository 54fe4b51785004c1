"""``python -m dispatcher prepare``: compile Cycles GPU kernels before a user's first render.

For each kind of card (compute capability, device type) without compiled kernels (kernels.py), one job
renders a tiny frame pinned to one such card, all kinds at once; the driver's compilation lands in the
shared CUDA cache, and the job's status shows the phase "compiling GPU kernels" meanwhile. When a lane's
frame is done the runner writes the card's marker, so ``devices`` and the add-on then say "compiled".
Never imports bpy.
"""

from __future__ import annotations

import os
import subprocess
import time

from . import jobs, kernels
from .spec import SpecError


def add_arguments(parser) -> None:
    parser.add_argument("--gpus", help="comma list of GPU indices or UUIDs (default: every card)")
    parser.add_argument("--device", dest="device_type", type=str.upper, help="OPTIX or CUDA (default: the best)")
    parser.add_argument("--blender", help="Blender binary or Python with bpy that runs the workers")
    parser.add_argument("--force", action="store_true", help="compile even where kernels look compiled")
    parser.add_argument("--job-dir", help="job folder (default: a new one under the user cache)")
    parser.add_argument("--detach", action="store_true", help="return at once; compiling goes on in the background")
    parser.add_argument("--json", action="store_true", help="print the final status as JSON")


def plan(report, program: str, device_type: str, wanted: list[str] | None, force: bool) -> tuple[list, list]:
    """(every selected card's kernel status, one card per kind to compile on)."""
    from .devices import select_gpus

    try:
        chosen = {gpu.index for gpu in select_gpus(report, wanted)}
    except ValueError as error:
        raise SpecError(str(error)) from None
    statuses = [status for status in kernels.kernel_status(report, program, device_type) if status["index"] in chosen]
    if force:
        statuses_to_do = [dict(status, compiled=False) for status in statuses]
        return statuses, kernels.uncompiled(statuses_to_do)
    return statuses, kernels.uncompiled(statuses)


def tiny_scene(program: str) -> str:
    """A small Cycles scene (built once per user): enough to make every kernel load."""
    from .blender_scripts import DEMO_SCENE
    from .process import blender_command

    folder = jobs.make_private_dir(os.path.join(jobs.user_cache_dir(), "prepare"))
    blend = os.path.join(folder, "prepare.blend")
    if os.path.exists(blend):
        return blend
    build = ["--out", blend, "--frames", "8", "--size", "64x64", "--samples", "1"]
    argv = blender_command(program, DEMO_SCENE, build)
    result = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
    if result.returncode != 0 or not os.path.exists(blend):
        tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise SpecError(f"could not build the scene to compile kernels with: {tail[0]}")
    return blend


def make_job(todo: list[dict], program: str, device_type: str, job_dir: str | None) -> str:
    from .spec import JobSpec

    blend = tiny_scene(program)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    spec = JobSpec(
        blend=blend,
        output_dir=os.path.join(os.path.dirname(blend), f"frames-{stamp}-{os.getpid()}"),
        frames=f"1-{len(todo)}",  # one frame per card: each lane compiles its own kind
        file_format="PNG",
        device_type=device_type,
        layout="per-card",
        gpus=[str(status["index"]) for status in todo],
        blender=program,
        samples=1,
        resolution=(64, 64),
        overwrite="overwrite",
        first_frame_timeout=3600.0,
        job_id=f"prepare-gpus-{stamp}-{os.getpid() % 10000:04d}",
        extra={"prepare": True},  # no backup copies: they would kill a card's compile half-way
    )
    return jobs.create_job(spec, job_dir=job_dir)


def describe(statuses: list[dict]) -> list[str]:
    marks = {True: "compiled", False: "NOT compiled", None: "unknown"}
    return [
        f"GPU {status['index']}: {status['name']} (sm {status['compute_capability']}, {status['device_type']}): "
        f"{marks[status['compiled']]} - {status['why']}"
        for status in statuses
    ]


def main(args) -> int:
    from .cli import EXIT_OK, run_in_foreground
    from .devices import best_device_type, detect_gpus
    from .process import default_program

    report = detect_gpus()
    if not report.gpus:
        raise SpecError(f"no NVIDIA GPU to prepare ({report.reason})")
    program = args.blender or default_program()
    if not program:
        raise SpecError("no Blender found: pass --blender PATH (a Blender binary or a Python with bpy)")
    device_type = (args.device_type or best_device_type(report)).upper()
    if device_type not in ("OPTIX", "CUDA"):
        raise SpecError(f"prepare compiles NVIDIA kernels: --device must be OPTIX or CUDA, not {device_type}")
    statuses, todo = plan(report, program, device_type, args.gpus.split(",") if args.gpus else None, args.force)
    print("\n".join(describe(statuses)))
    if not todo:
        print("every card has compiled kernels: nothing to prepare")
        return EXIT_OK
    job_dir = make_job(todo, program, device_type, args.job_dir)
    print(f"compiling GPU kernels on GPU {', '.join(str(status['index']) for status in todo)} "
          "(6-8 minutes on a card Blender ships no kernels for)")  # fmt: skip
    if args.detach:
        pid = jobs.launch_detached(job_dir)
        print(f"job {os.path.basename(job_dir)} runs in the background (pid {pid})")
        print(f"  status: python -m dispatcher status {job_dir}")
        return EXIT_OK
    code = run_in_foreground(job_dir, quiet=args.json, as_json=args.json)
    import shutil

    shutil.rmtree(jobs.load_spec(job_dir).output_dir, ignore_errors=True)  # the tiny frames served their purpose
    if not args.json:
        again = kernels.kernel_status(report, program, device_type)
        print("\n".join(describe([status for status in again if status["index"] in {s["index"] for s in statuses}])))
    return code


def start_in_background(program: str, python: str | None = None) -> int:
    """Run ``prepare`` in a session of its own (it outlives Blender's window); returns its pid.

    For the add-on's Prepare GPUs button; the log is ``<user cache>/prepare/prepare.log``.
    """
    import sys

    folder = jobs.make_private_dir(os.path.join(jobs.user_cache_dir(), "prepare"))
    argv = [python or sys.executable, "-m", "dispatcher", "prepare", "--blender", program]
    with open(os.path.join(folder, "prepare.log"), "ab") as log:
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=jobs.child_env(),
            cwd=jobs.PACKAGE_PARENT, start_new_session=sys.platform != "win32", close_fds=True,
        )  # fmt: skip
    return process.pid
