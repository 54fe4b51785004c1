"""Cancel the scene's running render."""

import bpy

from .. import monitor


class GRF_OT_cancel_job(bpy.types.Operator):
    """Stop every worker of this render (finished frames stay on disk)"""

    bl_idname = "grf.cancel_job"
    bl_label = "Cancel Render"
    bl_options = {"REGISTER"}

    @classmethod
    def poll(cls, context):
        job_dir = context.scene.gpu_render_farm.job_dir
        return bool(job_dir) and monitor.is_active(job_dir)

    def execute(self, context):
        from ..dispatcher import jobs

        job_dir = context.scene.gpu_render_farm.job_dir
        stopped = jobs.cancel_job(job_dir, wait=3.0)  # short: the UI waits meanwhile
        monitor.ensure_timer()
        self.report({"INFO"}, "Render cancelled" if stopped else "Cancel requested: the workers are stopping")
        return {"FINISHED"}
