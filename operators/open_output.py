"""Open the job's output folder in the file browser of the system; say so on screen when it cannot."""

import os
import shutil
import sys

import bpy

from .. import monitor


def output_dir(context) -> str:
    job_dir = context.scene.gpu_render_farm.job_dir
    status = monitor.status(job_dir)
    return (status.output_dir if status else None) or ""


def opener_missing() -> str | None:
    """Why Blender's path_open would fail silently here (it only prints to the console), or None."""
    if sys.platform.startswith("linux") and not shutil.which("xdg-open"):
        return "this system has no file browser opener (xdg-open)"
    return None


def open_path(operator, context, path: str, what: str) -> set:
    """Open a file or folder with the system's program; a popup and an Info report when it cannot."""
    if not os.path.exists(path):
        reason = f"The {what} does not exist yet: {path}"
    else:
        reason = opener_missing()
        if reason is None and "FINISHED" in bpy.ops.wm.path_open(filepath=path):
            return {"FINISHED"}
        reason = f"Could not open the {what}: {reason or 'the system refused'}. Its path is copied: {path}"
        context.window_manager.clipboard = path
    operator.report({"ERROR"}, reason)  # the status bar and the Info log
    if not bpy.app.background:  # and a popup where the artist looks
        bpy.ops.grf.show_message("INVOKE_DEFAULT", text=reason)
    return {"CANCELLED"}


class GRF_OT_open_output(bpy.types.Operator):
    """Open the folder the frames are written to"""

    bl_idname = "grf.open_output"
    bl_label = "Open Output Folder"
    bl_options = {"REGISTER"}

    @classmethod
    def poll(cls, context):
        return bool(output_dir(context))

    def execute(self, context):
        return open_path(self, context, output_dir(context), "output folder")
