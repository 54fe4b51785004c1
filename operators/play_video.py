"""Play the job's video, or encode it from the frames when there is none yet."""

import os

import bpy

from .. import monitor


class GRF_OT_play_video(bpy.types.Operator):
    """Play the MP4 of this render; encode it from the rendered frames first if needed"""

    bl_idname = "grf.play_video"
    bl_label = "Play Video"
    bl_options = {"REGISTER"}

    @classmethod
    def poll(cls, context):
        job_dir = context.scene.gpu_render_farm.job_dir
        status = monitor.status(job_dir)
        return status is not None and status.state == "done" and not monitor.encoding(job_dir)

    def execute(self, context):
        job_dir = context.scene.gpu_render_farm.job_dir
        status = monitor.status(job_dir)
        video = status.video if status else None
        if video and os.path.isfile(video):
            return bpy.ops.wm.path_open(filepath=video)
        monitor.start_encode(job_dir)
        self.report({"INFO"}, "Encoding the video from the rendered frames")
        return {"FINISHED"}
