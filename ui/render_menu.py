"""Where artists start renders: two entries in the Render menu, and the job block at the top of
Properties › Render, under the Render Engine selector (where Blender 2.7x had its Render buttons)."""

import bpy

from .job_view import draw_block


def draw_menu(self, context):
    layout = self.layout
    layout.separator()
    layout.operator("grf.render_all", text="Render Image on All GPUs", icon="RENDER_STILL").still = True
    layout.operator("grf.render_all", text="Render Animation on All GPUs", icon="RENDER_ANIMATION")


def draw_render_tab(self, context):
    box = self.layout.box()
    box.label(text="GPU Render Farm", icon="NETWORK_DRIVE")
    draw_block(box, context, "render")


def register():
    bpy.types.TOPBAR_MT_render.append(draw_menu)
    bpy.types.RENDER_PT_context.append(draw_render_tab)


def unregister():
    bpy.types.RENDER_PT_context.remove(draw_render_tab)
    bpy.types.TOPBAR_MT_render.remove(draw_menu)
