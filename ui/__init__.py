"""Panels; `classes` is what the add-on registers."""

import bpy

from .panel import GRF_PT_render_farm

classes = (GRF_PT_render_farm,)

register, unregister = bpy.utils.register_classes_factory(classes)
