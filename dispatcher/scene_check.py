"""Pre-flight of the scene: refuse missing external files, a missing camera, frames Blender cannot render.

Two places ask the same questions. The ``render`` command runs ``preflight_scene.py`` in Blender once
before it creates a job folder (about as long as a worker takes to open the file), so bad input is one
line and exit 2 with nothing created. Every worker also reports the same facts when it is ready (the
script is loaded beside ``worker.py``, so that costs milliseconds), and a job checks them before it
plans its first frame: a detached job, a resume, or the extension's job sees a library deleted since.
"""

from __future__ import annotations

import json
import os
import subprocess

from .blender_scripts import PREFLIGHT_SCENE
from .frames import MAX_FRAME, MIN_FRAME, FrameSyntaxError, check_bounds, parse_frames, scene_frames
from .process import blender_command, is_python_program
from .spec import JobSpec, SpecError

MARK = "GRF-PREFLIGHT "
SHOWN = 3  # missing files named in the one-line error


def inspect_scene(spec: JobSpec, program: str, timeout: float = 600.0) -> dict:
    """Open the .blend in Blender (scripts only with --trust) and return what preflight_scene.py found."""
    if is_python_program(program):
        argv = blender_command(program, PREFLIGHT_SCENE, ["--blend", spec.blend, *(["--trust"] * spec.trust_scripts)])
    else:
        argv = blender_command(program, PREFLIGHT_SCENE, [], blend=spec.blend, autoexec=spec.trust_scripts)
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, errors="replace")
    except (OSError, subprocess.TimeoutExpired) as error:
        raise SpecError(f"cannot open {spec.blend} in Blender: {error}") from None
    for line in result.stdout.splitlines():
        if line.startswith(MARK):
            facts = json.loads(line[len(MARK) :])
            if facts.get("error"):
                raise SpecError(f"Blender cannot open {spec.blend}: {facts['error']}")
            return facts
    tail = (result.stderr.strip().splitlines() or ["no output"])[-1]
    raise SpecError(f"Blender could not inspect {spec.blend} (exit {result.returncode}): {tail}")


def check_scene(spec: JobSpec, facts: dict) -> None:
    """Raise SpecError (one line) for what must not be rendered."""
    missing = facts.get("missing") or []
    if missing and not spec.allow_missing:
        shown = "; ".join(f"{item['kind']} {item['path']}" for item in missing[:SHOWN])
        more = f" and {len(missing) - SHOWN} more" if len(missing) > SHOWN else ""
        raise SpecError(
            f"{len(missing)} file(s) the scene needs are missing: {shown}{more} "
            "(fix the paths, or pass --allow-missing to render without them)"
        )
    if facts.get("camera") is False:
        raise SpecError("the scene has no camera: add one or set the scene camera")
    low, high = int(facts.get("min_frame", MIN_FRAME)), int(facts.get("max_frame", MAX_FRAME))
    try:
        if spec.frames:
            frames = parse_frames(spec.frames)
            check_bounds(frames[0], frames[-1], spec.frames, low, high)
        else:
            start, end = int(facts["frame_start"]), int(facts["frame_end"])
            check_bounds(start, end, f"{start}-{end}", low, high)
    except FrameSyntaxError as error:
        raise SpecError(str(error)) from None
    for folder in facts.get("output_folders") or []:  # where File Output nodes write
        problem = _folder_problem(folder)
        if problem:
            raise SpecError(f"a compositor File Output node writes to {folder}, which {problem}")


def _folder_problem(folder: str) -> str | None:
    """Create the folder as Blender would; why frames cannot be written there, or None."""
    from .disk import MIN_FREE_BYTES, output_problem

    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as error:
        return f"cannot be created: {error.strerror or error}"
    problem = output_problem(folder, MIN_FREE_BYTES)
    return problem.split(": ", 1)[-1] if problem else None


def job_frames(spec: JobSpec, scene: dict) -> list[int]:
    """The frames to render: the spec's, or the scene's own range and step (SpecError when empty)."""
    try:
        if spec.frames:
            return parse_frames(spec.frames)
        return scene_frames(scene["frame_start"], scene["frame_end"], scene["frame_step"])
    except FrameSyntaxError as error:
        raise SpecError(str(error)) from None


def refresh_preflight(facts: dict | None) -> dict | None:
    """Cached pre-flight facts with ``missing`` checked again on disk (a resume plans before any worker:
    a library fixed or lost since counts now); the first worker's own pre-flight is checked as well."""
    if not isinstance(facts, dict) or not isinstance(facts.get("files"), list):
        return facts
    known = {item.get("path"): item for item in facts.get("missing") or [] if isinstance(item, dict)}
    missing = [known.get(path) or {"kind": "file", "name": "", "path": path}
               for path in facts["files"] if isinstance(path, str) and not _on_disk(path)]  # fmt: skip
    return {**facts, "missing": missing}


def known_facts(job_dir: str, spec: JobSpec, program: str) -> dict:
    """The pre-flight facts for a resume: the job's cached ones, files checked again on disk (no Blender:
    resume stays cheap), else Blender's pre-flight of the file as it is now."""
    from .jobs import cached_scene

    cached = (cached_scene(job_dir, spec.blend) or {}).get("preflight")
    facts = refresh_preflight(cached) if isinstance(cached, dict) else None
    return facts if facts is not None and isinstance(facts.get("files"), list) else inspect_scene(spec, program)


def _on_disk(path: str) -> bool:
    """As preflight_scene.py judges it: a path with ``#`` or ``<UDIM>`` tokens needs one matching file."""
    import glob
    import re

    if os.path.exists(path):
        return True
    tokens = re.compile(r"<UDIM>|<UVTILE>|#+")
    return bool(tokens.search(path)) and bool(glob.glob(tokens.sub("*", glob.escape(path).replace("[*]", "*"))))

