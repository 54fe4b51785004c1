"""Prepare GPUs: compile Cycles kernels in the background for cards Blender ships none for."""

import bpy

from ..preferences import get_preferences, worker_program


class GRF_OT_prepare_gpus(bpy.types.Operator):
    """Compile GPU kernels now, in the background, so the first render does not wait 6-8 minutes for them"""

    bl_idname = "grf.prepare_gpus"
    bl_label = "Prepare GPUs"
    bl_options = {"REGISTER"}

    def execute(self, context):
        from ..dispatcher import prepare

        pid = prepare.start_in_background(worker_program(get_preferences(context)))
        self.report({"INFO"}, f"Compiling GPU kernels in the background (pid {pid}); press Refresh when done")
        return {"FINISHED"}
