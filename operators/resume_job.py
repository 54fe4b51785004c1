"""Resume a cancelled or failed render: only the missing frames are rendered, from the job's snapshot."""

import os
import time

import bpy

from .. import monitor

SNAPSHOT = "snapshot.blend"


def snapshot_time(job_dir: str) -> float | None:
    try:
        return os.path.getmtime(os.path.join(job_dir, SNAPSHOT))
    except OSError:
        return None


def file_changed_since(job_dir: str) -> bool:
    """The .blend was saved after the job's snapshot was taken (unsaved edits are not counted: a frame
    change or a selection marks the file as edited too)."""
    taken = snapshot_time(job_dir)
    if taken is None or not bpy.data.filepath:
        return False
    try:
        return os.path.getmtime(bpy.data.filepath) > taken + 1.0
    except OSError:
        return False


def snapshot_text(job_dir: str) -> str:
    """"the snapshot of 18:02" (with the date when it is not today)."""
    taken = snapshot_time(job_dir)
    if taken is None:
        return "the job's snapshot"
    same_day = time.strftime("%Y%m%d", time.localtime(taken)) == time.strftime("%Y%m%d")
    return f"the snapshot of {time.strftime('%H:%M' if same_day else '%b %d %H:%M', time.localtime(taken))}"


class GRF_OT_resume_job(bpy.types.Operator):
    """Render the frames this job has not finished yet, from the copy of the file saved when it started"""

    bl_idname = "grf.resume_job"
    bl_label = "Resume Render"
    bl_options = {"REGISTER"}

    @classmethod
    def poll(cls, context):
        job_dir = context.scene.gpu_render_farm.job_dir
        return bool(job_dir) and not monitor.is_active(job_dir)

    @classmethod
    def description(cls, context, properties):
        job_dir = context.scene.gpu_render_farm.job_dir
        text = f"Render the missing frames from {snapshot_text(job_dir)}"
        if job_dir and file_changed_since(job_dir):
            text += ". Your file changed since: press Render to render your edits"
        return text

    def execute(self, context):
        from ..dispatcher import jobs

        job_dir = context.scene.gpu_render_farm.job_dir
        try:
            jobs.resume_job(job_dir)
        except Exception as error:  # missing folder, bad spec
            self.report({"ERROR"}, f"Could not resume: {error}")
            return {"CANCELLED"}
        monitor.launched(job_dir)
        later = " (your later edits are not in it)" if file_changed_since(job_dir) else ""
        self.report({"INFO"}, f"Resuming from {snapshot_text(job_dir)}{later}")
        return {"FINISHED"}
