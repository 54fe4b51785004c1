"""Panels and menu entries; `classes` is what the add-on registers."""

import bpy

from . import render_menu
from .panel import GRF_PT_render_farm

classes = (GRF_PT_render_farm,)

_register_classes, _unregister_classes = bpy.utils.register_classes_factory(classes)


def register():
    _register_classes()
    render_menu.register()


def unregister():
    render_menu.unregister()
    _unregister_classes()
