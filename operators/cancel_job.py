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
        return bool(job_dir) and monitor.dispatcher_alive(job_dir) and not monitor.cancelling(job_dir)

    def execute(self, context):
        from ..dispatcher import jobs

        job_dir = context.scene.gpu_render_farm.job_dir
        stopped = jobs.cancel_job(job_dir, wait=0)  # no waiting here: the timer follows the stop
        monitor.ensure_timer()
        self.report({"INFO"}, "Render cancelled" if stopped else "Cancelling: the workers are stopping")
        return {"FINISHED"}
