"""Blender's output rules, shared by the command line and the add-on.

With no ``-o``, frames go where the scene says, as ``blender -b FILE -a`` would put them: the scene's
output path (``//`` is the .blend's folder; a relative path is taken from the current folder), the
last run of ``#`` becomes the zero-padded frame number (no ``#``: four digits are appended), and the
file extension is added only when the scene's *File Extensions* setting is on. The scene's *Overwrite*
(Blender's default: on) and *Placeholders* settings apply; ``--overwrite`` / ``--skip-existing`` override
the first.
"""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

from .process import worker_command
from .spec import IMAGE_FORMATS, JobSpec, SpecError


def add_output_options(parser) -> None:
    """The render command's output options."""
    parser.add_argument("--output", "-o", help="output folder (default: the scene's output path, as Blender uses it)")
    parser.add_argument("--pattern", help="file name, # = frame digits (default: the scene's; frame_#### with -o)")
    policy = parser.add_mutually_exclusive_group()
    policy.add_argument("--overwrite", dest="policy", action="store_const", const="overwrite",
                        help="render every frame, even those already in the folder (default: the scene's Overwrite)")
    policy.add_argument("--skip-existing", dest="policy", action="store_const", const="skip",
                        help="keep valid frames already in the folder (the summary says which job made them)")
    parser.add_argument("--queue", action="store_true",
                        help="if another job is writing the output folder, wait for it instead of refusing")


def split_output_path(path: str, base: str | None = None) -> tuple[str, str]:
    """A resolved scene output path -> (absolute folder, file name pattern); "" means digits only."""
    path = path or ""
    folder, name = os.path.split(path)
    if path.endswith(("/", "\\")):
        folder, name = path.rstrip("/\\") or path[:1], ""
    folder = os.path.join(base or os.getcwd(), folder) if not os.path.isabs(folder) else folder
    return os.path.normpath(folder), name


def read_output_facts(program: str, blend: str, trust: bool = False, timeout: float = 120.0) -> dict:
    """The scene's output settings and frame range, read by a short worker run (no render)."""
    argv = worker_command(program, blend, ["--output-facts"], trust)
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise SpecError(f"cannot read the scene of {blend}: {error}") from None
    for line in result.stdout.splitlines():
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if message.get("event") == "output":
            return message
        if message.get("event") == "fatal":
            raise SpecError(f"cannot open {blend}: {message.get('error')}")
    tail = (result.stderr.strip().splitlines() or ["no output"])[-1]
    raise SpecError(f"cannot read the scene of {blend} (exit {result.returncode}: {tail})")


def apply_scene_rules(settings: dict, facts: dict, output: str | None, pattern: str | None) -> dict:
    """JobSpec fields from the scene's facts and the command line's choices (None: not given).

    ``settings`` holds ``overwrite`` ("overwrite", "skip" or None), ``frames`` and ``file_format``.
    """
    if output:
        folder, name = os.path.abspath(output), pattern or "frame_####"
    else:
        folder, name = split_output_path(facts["path"])
        name = pattern or name
    fields: dict[str, Any] = {"output_dir": folder, "file_pattern": name}
    fields["overwrite"] = settings.get("overwrite") or ("overwrite" if facts.get("use_overwrite", True) else "skip")
    fields["placeholders"] = bool(facts.get("use_placeholder"))
    fields["use_file_extension"] = bool(facts.get("use_file_extension", True))
    if not settings.get("frames"):
        step = facts.get("frame_step", 1)
        fields["frames"] = f"{facts['frame_start']}-{facts['frame_end']}" + (f"x{step}" if step > 1 else "")
        if facts["frame_end"] < facts["frame_start"]:
            raise SpecError(f"the scene's frame range {facts['frame_start']}-{facts['frame_end']} is empty")
    if not settings.get("file_format"):
        scene_format = facts.get("file_format")
        if facts.get("is_movie"):
            fields["file_format"] = "PNG"  # frames are rendered as PNG; --video encodes the movie
        elif scene_format in IMAGE_FORMATS:
            fields["file_format"] = scene_format
        else:
            fields["extra_scene_extension"] = facts.get("file_extension")
    return fields


def apply_scene_output(spec: JobSpec, args, facts: dict | None = None) -> tuple[JobSpec, dict]:
    """The command line's spec completed by the scene's own output rules, and the pre-flight facts
    (external files, frame limits) that the same short worker run read (or a warm worker: ``facts``)."""
    from .preflight import check_blend
    from .process import default_program

    check_blend(spec.blend)
    program = spec.blender or default_program()
    if not program:
        raise SpecError("no Blender found: pass --blender PATH (a Blender binary or a Python with bpy)")
    facts = facts or read_output_facts(program, spec.blend, spec.trust_scripts)
    if not facts.get("camera"):
        raise SpecError(f"scene '{facts.get('scene')}' has no camera: add one or set the scene camera")
    chosen = {"overwrite": args.policy, "frames": args.frames, "file_format": args.file_format}
    fields = apply_scene_rules(chosen, facts, args.output, args.pattern)
    extension = fields.pop("extra_scene_extension", None)
    if extension:
        spec.extra["scene_extension"] = extension
    for name, value in fields.items():
        setattr(spec, name, value)
    spec.extra.setdefault("scene", facts.get("scene"))
    return spec.validate(), facts["preflight"]


def refuse_busy_output(spec: JobSpec) -> None:
    """One writer per output folder: refuse (unless --queue) a folder that a live job is writing."""
    from .output_lock import describe_owner, output_busy

    owner = output_busy(spec.output_dir)
    if owner and not spec.wait_for_output:
        raise SpecError(f"output folder {spec.output_dir} is being written by {describe_owner(owner)}; "
                        "wait for it, cancel it, or add --queue to start when it is done")  # fmt: skip
