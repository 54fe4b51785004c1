"""Operators, one per file; `classes` is what the add-on registers."""

import bpy

from .cancel_job import GRF_OT_cancel_job
from .open_output import GRF_OT_open_output
from .play_video import GRF_OT_play_video
from .prepare_gpus import GRF_OT_prepare_gpus
from .refresh_devices import GRF_OT_refresh_devices
from .render_all import GRF_OT_render_all
from .resume_job import GRF_OT_resume_job

classes = (
    GRF_OT_refresh_devices,
    GRF_OT_render_all,
    GRF_OT_cancel_job,
    GRF_OT_resume_job,
    GRF_OT_open_output,
    GRF_OT_play_video,
    GRF_OT_prepare_gpus,
)

register, unregister = bpy.utils.register_classes_factory(classes)
