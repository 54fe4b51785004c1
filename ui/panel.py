"""The GPU Render Farm panel in Properties > Output."""

import bpy

from .. import monitor
from ..planning import is_movie, output_target
from ..preferences import get_preferences
from .job_view import draw_job


def draw_devices(layout, prefs) -> None:
    """One row per card: checkbox and name, VRAM, load, temperature; Cycles' list without NVML."""
    box = layout.box()
    row = box.row()
    row.label(text="GPUs", icon="DESKTOP")
    row.operator("grf.refresh_devices", text="Refresh", icon="FILE_REFRESH")
    report = monitor.devices
    if report is None:
        box.label(text="Press Refresh to look for GPUs")
        return
    entries = {device.key: device for device in prefs.devices}
    for gpu in report.gpus:
        row = box.row()
        split = row.split(factor=0.5)
        name = f"{gpu.index}: {gpu.name}"
        if gpu.uuid in entries:
            split.prop(entries[gpu.uuid], "use", text=name)
        else:
            split.label(text=name)
        stats = split.row()
        stats.label(text=f"{gpu.memory_used_mb / 1024:.1f} / {gpu.memory_total_mb / 1024:.1f} GB")
        stats.label(text=f"{gpu.utilization_pct}%" if gpu.utilization_pct is not None else "-")
        stats.label(text=f"{gpu.temperature_c} C" if gpu.temperature_c is not None else "-")
    cold = [status for status in monitor.kernels if status["compiled"] is False]
    if cold:
        box.label(text=f"GPU {', '.join(str(s['index']) for s in cold)}: no compiled kernels yet", icon="ERROR")
        box.operator("grf.prepare_gpus", icon="PLAY")
    if report.gpus:
        return
    for name, kind in monitor.cycles_devices:
        box.label(text=f"{name} ({kind})", icon="BLANK1")
    box.label(text=f"No GPU found by NVML: {report.reason}", icon="INFO")
    if not monitor.cycles_devices:
        box.label(text="Frames will render on CPU lanes")


OVERWRITE_HINT = {
    True: "Render again renders every frame; Resume finishes only this job's missing frames",
    False: "Valid frames already in the folder are kept; the job says how many and from which render",
}


def draw_settings(layout, scene) -> None:
    settings = scene.gpu_render_farm
    col = layout.column()
    col.prop(settings, "mode")
    if settings.mode == "GROUPS":
        col.prop(settings, "gpus_per_worker")
    elif settings.mode == "SHARED":
        col.prop(settings, "workers_per_gpu")
    col.prop(settings, "cpu_lane")
    col.prop(settings, "use_scene_range")
    if settings.use_scene_range:
        col.label(text=f"Frames {scene.frame_start} - {scene.frame_end}", icon="BLANK1")
    else:
        col.prop(settings, "frames")
    col.prop(settings, "output_dir")
    folder, pattern = output_target(scene, bpy.data.filepath)
    col.label(text=f"Frames go to {folder}/{pattern}", icon="BLANK1")
    row = col.row()  # Blender's own Output settings, shared with F12 / Render Animation
    row.prop(scene.render, "use_overwrite")
    row.prop(scene.render, "use_placeholder")
    col.label(text=OVERWRITE_HINT[scene.render.use_overwrite], icon="BLANK1")
    if is_movie(scene):
        col.label(text="Movie output: frames render as PNG, then encode to MP4", icon="INFO")


class GRF_PT_render_farm(bpy.types.Panel):
    """Render the animation on every GPU of this machine"""

    bl_idname = "GRF_PT_render_farm"
    bl_label = "GPU Render Farm"
    bl_space_type = "PROPERTIES"
    bl_region_type = "WINDOW"
    bl_context = "output"

    def draw(self, context):
        layout = self.layout
        scene = context.scene
        job_dir = scene.gpu_render_farm.job_dir
        draw_devices(layout, get_preferences(context))
        draw_settings(layout, scene)
        row = layout.row()
        row.scale_y = 1.6
        row.enabled = not (job_dir and monitor.is_active(job_dir))
        row.operator("grf.render_all", text="Render on All GPUs", icon="RENDER_ANIMATION")
        if job_dir:
            draw_job(layout, job_dir, monitor.status(job_dir))
