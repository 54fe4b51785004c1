"""Build a small animated Cycles scene procedurally and save it (run by a Python with bpy or Blender).

python demo_scene.py --out demo.blend [--frames 48] [--size 320x180] [--samples 16]
blender -b --factory-startup --python demo_scene.py -- --out demo.blend
"""

from __future__ import annotations

import argparse
import math
import sys


def parse_args() -> argparse.Namespace:
    argv = sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else sys.argv[1:]
    parser = argparse.ArgumentParser(prog="demo_scene.py")
    parser.add_argument("--out", required=True)
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--size", default="320x180")
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--format", default="PNG")
    parser.add_argument("--no-camera", action="store_true")
    return parser.parse_args(argv)


def material(bpy, name: str, color, metallic=0.0, roughness=0.4, emission=0.0, transmission=0.0):
    mat = bpy.data.materials.new(name)
    mat.use_nodes = True
    shader = mat.node_tree.nodes.get("Principled BSDF")
    shader.inputs["Base Color"].default_value = (*color, 1.0)
    shader.inputs["Metallic"].default_value = metallic
    shader.inputs["Roughness"].default_value = roughness
    if transmission:
        shader.inputs["Transmission Weight"].default_value = transmission
    if emission:
        shader.inputs["Emission Color"].default_value = (*color, 1.0)
        shader.inputs["Emission Strength"].default_value = emission
    return mat


def build(args: argparse.Namespace) -> None:
    import bpy

    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.samples = args.samples
    scene.cycles.use_denoising = False
    width, height = (int(value) for value in args.size.lower().split("x"))
    scene.render.resolution_x, scene.render.resolution_y = width, height
    scene.render.resolution_percentage = 100
    if args.format == "FFMPEG" and hasattr(scene.render.image_settings, "media_type"):
        scene.render.image_settings.media_type = "VIDEO"
    scene.render.image_settings.file_format = args.format
    scene.frame_start, scene.frame_end = 1, args.frames

    world = bpy.data.worlds.new("World")
    world.use_nodes = True
    world.node_tree.nodes["Background"].inputs["Color"].default_value = (0.02, 0.025, 0.04, 1)
    scene.world = world

    bpy.ops.mesh.primitive_plane_add(size=20)
    bpy.context.object.data.materials.append(material(bpy, "Floor", (0.3, 0.3, 0.32), roughness=0.25))

    add_objects(bpy, args.frames)
    if not args.no_camera:
        add_camera(bpy, scene, args.frames)
    bpy.ops.wm.save_as_mainfile(filepath=args.out)


def add_objects(bpy, frames: int) -> None:
    """Spinning glass spheres and metal cubes, an emissive lamp and an area light."""
    palette = [(0.9, 0.2, 0.15), (0.15, 0.5, 0.9), (0.95, 0.75, 0.2), (0.3, 0.85, 0.4)]
    for index, color in enumerate(palette):
        angle = index * math.tau / len(palette)
        location = (2.2 * math.cos(angle), 2.2 * math.sin(angle), 0.8)
        if index % 2:
            bpy.ops.mesh.primitive_uv_sphere_add(radius=0.8, location=location, segments=32, ring_count=16)
            bpy.ops.object.shade_smooth()
            mat = material(bpy, f"Glass{index}", color, roughness=0.05, transmission=1.0)
        else:
            bpy.ops.mesh.primitive_cube_add(size=1.2, location=location)
            mat = material(bpy, f"Metal{index}", color, metallic=1.0, roughness=0.2)
        obj = bpy.context.object
        obj.data.materials.append(mat)
        obj.rotation_euler = (0, 0, 0)
        obj.keyframe_insert("rotation_euler", frame=1)
        obj.rotation_euler = (0, 0, math.tau)
        obj.keyframe_insert("rotation_euler", frame=frames)

    bpy.ops.mesh.primitive_ico_sphere_add(radius=0.5, location=(0, 0, 1.2), subdivisions=3)
    bpy.context.object.data.materials.append(material(bpy, "Lamp", (1.0, 0.6, 0.3), emission=8.0))

    bpy.ops.object.light_add(type="AREA", location=(0, 0, 6))
    bpy.context.object.data.energy = 400
    bpy.context.object.data.size = 4


def add_camera(bpy, scene, frames: int) -> None:
    """A camera tracking the centre, moving across the animation."""
    bpy.ops.object.empty_add(location=(0, 0, 0.8))
    target = bpy.context.object
    bpy.ops.object.camera_add(location=(7, -7, 4.5))
    camera = bpy.context.object
    constraint = camera.constraints.new("TRACK_TO")
    constraint.target = target
    camera.location = (7, -7, 4.5)
    camera.keyframe_insert("location", frame=1)
    camera.location = (-7, -7, 3.5)
    camera.keyframe_insert("location", frame=frames)
    scene.camera = camera


if __name__ == "__main__":
    build(parse_args())
