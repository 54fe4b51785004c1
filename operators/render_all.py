"""Render on all GPUs: check, save, snapshot, launch the dispatcher detached, start polling."""

import os

import bpy

from .. import monitor
from ..planning import PlanError, plan_job, png_output
from ..preferences import get_preferences, jobs_root, sync_devices

SNAPSHOT = "snapshot.blend"


class GRF_OT_render_all(bpy.types.Operator):
    """Render the animation on every selected GPU in the background (Blender stays usable)"""

    bl_idname = "grf.render_all"
    bl_label = "Render on All GPUs"
    bl_options = {"REGISTER"}

    allow_missing: bpy.props.BoolProperty(  # type: ignore[valid-type]
        name="Render Anyway", description="Render even though files the scene needs are missing",
        default=False, options={"SKIP_SAVE"},
    )

    still: bpy.props.BoolProperty(
        name="Image", default=False, options={"SKIP_SAVE"},
        description="Render only the current frame (Automatic mode puts several cards on it)",
    )

    @classmethod
    def description(cls, context, properties):
        if properties.still:
            return "Render the current frame on every selected GPU in the background (Blender stays usable)"
        return cls.__doc__

    @classmethod
    def poll(cls, context):
        return context.scene is not None

    def execute(self, context):
        from ..dispatcher import jobs
        from ..dispatcher.devices import detect_gpus

        settings = context.scene.gpu_render_farm
        if settings.job_dir and monitor.is_active(settings.job_dir):
            self.report({"ERROR"}, "A render is still running for this scene: cancel it first")
            return {"CANCELLED"}
        prefs = get_preferences(context)
        if monitor.devices is None:  # never refreshed: probe now, the user asked to render
            monitor.set_devices(detect_gpus())
            sync_devices(prefs, monitor.devices.gpus)
        try:
            plan = plan_job(context, prefs, monitor.devices, bpy.app.binary_path)
            if self.still:
                plan.spec.frames = str(context.scene.frame_current)
        except PlanError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        plan.spec.allow_missing = self.allow_missing
        from ..dispatcher.output_lock import describe_owner, output_busy

        owner = output_busy(plan.spec.output_dir)
        if owner:  # one writer per output folder
            self.report({"ERROR"}, f"{plan.spec.output_dir} is being written by {describe_owner(owner)}: "
                                   "wait for it or cancel it, or choose another output folder")  # fmt: skip
            return {"CANCELLED"}
        for message in plan.warnings:
            self.report({"WARNING"}, message)
        for message in plan.notes:
            self.report({"INFO"}, message)

        previous = settings.job_dir
        try:
            job_dir = jobs.new_job_dir(jobs_root(prefs), bpy.data.filepath)
            settings.job_dir = job_dir  # saved in the .blend: reopening re-attaches
            bpy.ops.wm.save_mainfile()
            plan.spec.blend = os.path.join(job_dir, SNAPSHOT)
            jobs.create_job(plan.spec, job_dir=job_dir)  # validates; makes the private folder
            with png_output(context.scene):  # workers render frames; the MP4 is encoded at the end
                bpy.ops.wm.save_as_mainfile(filepath=plan.spec.blend, copy=True, relative_remap=True)
            jobs.launch_detached(job_dir)
            monitor.launched(job_dir)
        except Exception as error:  # SpecError, OSError, a failed save: nothing is running
            settings.job_dir = previous
            self.report({"ERROR"}, f"Could not start the render: {error}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"Rendering {plan.spec.frames} in the background: {job_dir}")
        return {"FINISHED"}
