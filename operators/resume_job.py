"""Resume a cancelled or failed render: only the missing frames are rendered."""

import bpy

from .. import monitor


class GRF_OT_resume_job(bpy.types.Operator):
    """Render the frames this job has not finished yet"""

    bl_idname = "grf.resume_job"
    bl_label = "Resume Render"
    bl_options = {"REGISTER"}

    @classmethod
    def poll(cls, context):
        job_dir = context.scene.gpu_render_farm.job_dir
        return bool(job_dir) and not monitor.is_active(job_dir)

    def execute(self, context):
        from ..dispatcher import jobs

        job_dir = context.scene.gpu_render_farm.job_dir
        try:
            jobs.resume_job(job_dir)
        except Exception as error:  # missing folder, bad spec
            self.report({"ERROR"}, f"Could not resume: {error}")
            return {"CANCELLED"}
        monitor.poll(job_dir)
        monitor.ensure_timer()
        self.report({"INFO"}, "Render resumed")
        return {"FINISHED"}
