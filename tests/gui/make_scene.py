"""A small saved scene for the real-window test: Cycles on the CPU, 24 frames of a turning cube.

Run: blender -b --factory-startup --python tests/gui/make_scene.py -- OUT.blend [--denoise]
Each frame takes about a second on one core, so Cancel lands in the middle of the render.
"""

import math
import os
import sys

import bpy

args = sys.argv[sys.argv.index("--") + 1:]
out = os.path.abspath(args[0])
scene = bpy.context.scene
scene.render.engine = "CYCLES"
scene.cycles.device = "CPU"
scene.cycles.samples = 32
scene.cycles.use_adaptive_sampling = False
scene.cycles.use_denoising = "--denoise" in args  # Debian's Blender has no OpenImageDenoise
scene.render.resolution_x, scene.render.resolution_y = 192, 108
scene.render.resolution_percentage = 100
scene.frame_start, scene.frame_end = 1, 24
scene.render.image_settings.file_format = "PNG"
scene.render.filepath = "//render/shot_"
cube = bpy.data.objects["Cube"]
cube.rotation_mode = "XYZ"
for frame, angle in ((1, 0.0), (24, math.pi)):
    cube.rotation_euler = (0.3, 0.2, angle)
    cube.keyframe_insert("rotation_euler", frame=frame)
os.makedirs(os.path.dirname(out), exist_ok=True)
bpy.ops.wm.save_as_mainfile(filepath=out)
print("saved", out)
