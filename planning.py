"""Checks before a render and the JobSpec they lead to; messages are written for the artist.

bpy-free: it reads the scene, context and preferences objects it is given (duck-typed), so the operators and
the panel share it and it can be read without Blender's modules.
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass, field

from .dispatcher.frames import FrameSyntaxError, parse_frames
from .dispatcher.output_rules import split_output_path
from .dispatcher.spec import IMAGE_FORMATS, MOVIE_EXTENSIONS, JobSpec, SpecError

LAYOUTS = {"PER_CARD": "per-card", "COMBINED": "combined", "GROUPS": "groups", "SHARED": "per-card"}
NON_NVIDIA_GPU_TYPES = ("HIP", "ONEAPI", "METAL")


class PlanError(Exception):
    """A reason not to start the render, worded for the artist."""


@dataclass
class Plan:
    spec: JobSpec
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def blend_relative(path: str, blend: str) -> str:
    """Blender's ``//`` prefix (relative to the saved .blend) made absolute, as bpy.path.abspath does."""
    if path.startswith("//"):
        return os.path.join(os.path.dirname(blend), path[2:])
    return path


def worker_program(prefs, blend: str, binary_path: str = "") -> str:
    """The program that runs workers: the preference, else this Blender, else this Python (bpy module)."""
    if prefs.blender_binary:
        return blend_relative(prefs.blender_binary, blend)
    return binary_path or sys.executable


def device_used(prefs, key: str) -> bool:
    """Whether the card with this key is ticked; cards not in the mapping yet are used."""
    for device in prefs.devices:
        if device.key == key:
            return device.use
    return True


def per_gpu_overrides(prefs) -> dict:
    """The cards whose device type or worker count differs from the defaults, for JobSpec.per_gpu."""
    overrides = {}
    for device in prefs.devices:
        override = {}
        if getattr(device, "device_type", "INHERIT") != "INHERIT":
            override["device_type"] = device.device_type
        if getattr(device, "workers", 0):
            override["workers"] = device.workers
        if override:
            overrides[device.key] = override
    return overrides


def is_movie(scene) -> bool:
    settings = scene.render.image_settings
    return getattr(settings, "media_type", "") == "VIDEO" or settings.file_format == "FFMPEG"


@contextlib.contextmanager
def png_output(scene):
    """While saving the snapshot, a movie output becomes PNG frames (restored afterwards)."""
    if not is_movie(scene):
        yield
        return
    settings = scene.render.image_settings
    saved = (getattr(settings, "media_type", None), settings.file_format)
    try:
        if saved[0] is not None:
            settings.media_type = "IMAGE"
        settings.file_format = "PNG"
        yield
    finally:
        if saved[0] is not None:
            settings.media_type = saved[0]
        settings.file_format = saved[1]


def frames_text(scene) -> str:
    """The frames to render, checked; raises PlanError on an empty or unreadable range."""
    settings = scene.gpu_render_farm
    if settings.use_scene_range:
        if scene.frame_end < scene.frame_start:
            raise PlanError(
                f"Empty frame range: the scene ends at frame {scene.frame_end}, before it starts "
                f"({scene.frame_start})"
            )
        step = f"x{scene.frame_step}" if scene.frame_step > 1 else ""
        return f"{scene.frame_start}-{scene.frame_end}{step}"
    try:
        parse_frames(settings.frames)
    except FrameSyntaxError as error:
        raise PlanError(f"Frame range: {error}") from None
    return settings.frames.strip()


def output_target(scene, blend: str) -> tuple[str, str]:
    """(absolute output folder, file pattern): the scene's output path as Blender reads it (as the CLI does);
    the panel's folder, when set, replaces only the folder."""
    folder, name = split_output_path(blend_relative(scene.render.filepath, blend), base=os.getcwd())
    if is_movie(scene):
        stem, extension = os.path.splitext(name)
        name = stem if extension.lower() in MOVIE_EXTENSIONS else name
    if scene.gpu_render_farm.output_dir:
        folder = os.path.normpath(blend_relative(scene.gpu_render_farm.output_dir, blend))
    return folder, name


def apply_output_settings(spec: JobSpec, render) -> None:
    """Blender's own Output settings decide, as for F12: Overwrite, Placeholders, File Extensions."""
    spec.overwrite = "overwrite" if render.use_overwrite else "skip"
    spec.placeholders = render.use_placeholder
    spec.use_file_extension = render.use_file_extension


def selected_gpus(report, prefs) -> list:
    return [gpu for gpu in report.gpus if device_used(prefs, gpu.uuid)]


def plan_job(context, prefs, report, binary_path: str = "") -> Plan:
    """Check the scene and the settings; build the JobSpec or raise PlanError.

    ``binary_path``: the running Blender (bpy.app.binary_path; empty in the bpy module).
    """
    scene = context.scene
    blend = context.blend_data.filepath
    settings = scene.gpu_render_farm
    engine = scene.render.engine
    cycles = engine == "CYCLES"
    if not blend:
        raise PlanError("Save the .blend file first (File > Save): workers render a saved copy of it")
    if scene.camera is None:
        raise PlanError(f"Scene '{scene.name}' has no active camera: set one in the Scene properties")
    frames = frames_text(scene)
    output_dir, pattern = output_target(scene, blend)
    plan = Plan(JobSpec(blend=blend, output_dir=output_dir, frames=frames, file_pattern=pattern))
    spec = plan.spec

    if is_movie(scene):
        spec.file_format = "PNG"
        spec.video = True  # Blender's own FFmpeg encodes it when imageio-ffmpeg is not there
        plan.notes.append("Movie output: frames are rendered as PNG, then encoded to an MP4 with the scene's sound")
    else:
        fmt = scene.render.image_settings.file_format
        spec.file_format = fmt if fmt in IMAGE_FORMATS else None

    gpus = selected_gpus(report, prefs)
    if report.gpus and not gpus:
        raise PlanError("No GPU selected: tick at least one card in the GPU Render Farm panel")
    if not cycles:
        check_other_engine(plan, engine, settings, gpus, report)
    choose_devices(plan, settings, prefs, gpus, report, cycles)
    spec.threads = prefs.threads or None
    spec.persistent_data = prefs.persistent_data
    spec.trust_scripts = prefs.trust_scripts
    spec.blender = worker_program(prefs, blend, binary_path)
    apply_output_settings(spec, scene.render)
    spec.backend = prefs.backend.lower()
    spec.ray_address = prefs.ray_address or None
    spec.extra = {"audio_blend": blend, "scene": scene.name, "engine": engine}
    try:
        spec.validate()
    except SpecError as error:
        raise PlanError(str(error)) from None
    return plan


def check_other_engine(plan: Plan, engine: str, settings, gpus: list, report) -> None:
    """Eevee and Workbench render on one GPU, never the CPU lane, and cannot be pinned per card."""
    name = "Eevee" if "EEVEE" in engine else "Workbench" if engine == "BLENDER_WORKBENCH" else engine
    if settings.cpu_lane:
        raise PlanError(f"The CPU lane needs Cycles: {name} cannot render on the processor")
    if len(gpus) > 1 and settings.mode in ("PER_CARD", "GROUPS"):
        raise PlanError(
            f"Per-card GPU pinning only works with Cycles: {name} would render every worker on the same "
            "GPU. Switch to Cycles, or choose 'Workers per GPU' with one card"
        )
    if not report.gpus:
        plan.warnings.append(f"No GPU found ({report.reason}): {name} needs a GPU, workers may fail")


def choose_devices(plan: Plan, settings, prefs, gpus: list, report, cycles: bool) -> None:
    """The layout, the cards and the device type the workers use."""
    spec = plan.spec
    spec.layout = LAYOUTS[settings.mode]
    spec.gpus_per_worker = settings.gpus_per_worker if settings.mode == "GROUPS" else 1
    spec.workers_per_gpu = settings.workers_per_gpu if settings.mode == "SHARED" else 1
    spec.cpu_lane = settings.cpu_lane and bool(gpus)
    if gpus:
        spec.gpus = [str(gpu.index) for gpu in gpus]
        spec.device_type = None if prefs.device_type == "AUTO" or not cycles else prefs.device_type
        if cycles and settings.mode == "PER_CARD":
            spec.per_gpu = per_gpu_overrides(prefs)
    elif cycles and prefs.device_type in NON_NVIDIA_GPU_TYPES:
        spec.device_type, spec.layout = prefs.device_type, "combined"
        plan.notes.append(f"No NVIDIA GPU listed by NVML: one worker uses all {prefs.device_type} devices")
    elif cycles:
        spec.device_type = "CPU"
        plan.notes.append(f"No GPU found ({report.reason}): rendering on CPU lanes")
