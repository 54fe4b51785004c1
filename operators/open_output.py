"""Open the job's output folder in the file browser of the system."""

import os

import bpy

from .. import monitor


def output_dir(context) -> str:
    job_dir = context.scene.gpu_render_farm.job_dir
    status = monitor.status(job_dir)
    return (status.output_dir if status else None) or ""


class GRF_OT_open_output(bpy.types.Operator):
    """Open the folder the frames are written to"""

    bl_idname = "grf.open_output"
    bl_label = "Open Output Folder"
    bl_options = {"REGISTER"}

    @classmethod
    def poll(cls, context):
        return bool(output_dir(context))

    def execute(self, context):
        folder = output_dir(context)
        if not os.path.isdir(folder):
            self.report({"ERROR"}, f"The output folder does not exist yet: {folder}")
            return {"CANCELLED"}
        return bpy.ops.wm.path_open(filepath=folder)
