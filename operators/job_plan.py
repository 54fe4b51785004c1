"""Checks before a render and the JobSpec they lead to; messages are written for the artist."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field

import bpy

from ..dispatcher.frames import FrameSyntaxError, parse_frames
from ..dispatcher.spec import IMAGE_FORMATS, MOVIE_EXTENSIONS, JobSpec, SpecError
from ..preferences import device_used, per_gpu_overrides, worker_program

LAYOUTS = {"PER_CARD": "per-card", "COMBINED": "combined", "GROUPS": "groups", "SHARED": "per-card"}
NON_NVIDIA_GPU_TYPES = ("HIP", "ONEAPI", "METAL")


class PlanError(Exception):
    """A reason not to start the render, worded for the artist."""


@dataclass
class Plan:
    spec: JobSpec
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


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


def output_target(scene) -> tuple[str, str]:
    """(absolute output folder, file pattern) from the panel's folder or the scene's output path."""
    path = scene.render.filepath or "//render/"
    folder, name = os.path.split(path)
    if scene.gpu_render_farm.output_dir:
        folder = scene.gpu_render_farm.output_dir
    stem, extension = os.path.splitext(name)
    if extension.lower() in (*IMAGE_FORMATS.values(), *MOVIE_EXTENSIONS, ".jpeg", ".tiff"):
        name = stem
    if not name:
        name = "frame_"
    if "#" not in name:
        name += "####"
    return os.path.normpath(bpy.path.abspath(folder or "//")), name


def selected_gpus(report, prefs) -> list:
    return [gpu for gpu in report.gpus if device_used(prefs, gpu.uuid)]


def plan_job(context, prefs, report) -> Plan:
    """Check the scene and the settings; build the JobSpec or raise PlanError."""
    scene = context.scene
    settings = scene.gpu_render_farm
    engine = scene.render.engine
    cycles = engine == "CYCLES"
    if not bpy.data.filepath:
        raise PlanError("Save the .blend file first (File > Save): workers render a saved copy of it")
    if scene.camera is None:
        raise PlanError(f"Scene '{scene.name}' has no active camera: set one in the Scene properties")
    frames = frames_text(scene)
    output_dir, pattern = output_target(scene)
    plan = Plan(JobSpec(blend=bpy.data.filepath, output_dir=output_dir, frames=frames, file_pattern=pattern))
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

    spec.threads = prefs.threads or None
    spec.persistent_data = prefs.persistent_data
    spec.trust_scripts = prefs.trust_scripts
    spec.blender = worker_program(prefs)
    spec.overwrite = "overwrite" if settings.overwrite else "skip"
    spec.backend = prefs.backend.lower()
    spec.ray_address = prefs.ray_address or None
    spec.notify_url = getattr(prefs, "notify_url", "") or None
    spec.extra = {"audio_blend": bpy.data.filepath, "scene": scene.name, "engine": engine}
    try:
        spec.validate()
    except SpecError as error:
        raise PlanError(str(error)) from None
    return plan
