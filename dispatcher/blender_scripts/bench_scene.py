"""Build the benchmark scene and save it as a .blend (a bpy script; the dispatcher never imports it).

Run with the worker program::

    python dispatcher/blender_scripts/bench_scene.py -- --output bench.blend --triangles 600000 --frames 64
    blender -b --factory-startup --python dispatcher/blender_scripts/bench_scene.py -- --output bench.blend --deforming

The scene: a checkered ground, rows of metal monkeys and tori, glass spheres, emission pillars, an area
light and a camera that circles the set (the camera moves every frame). ``--deforming`` adds geometry that
changes every frame (a keyframed Wave modifier on the ground, animated shape keys on the monkeys, a keyframed
twist on the tori), so Cycles must rebuild those meshes every frame and persistent data cannot keep them.
The last line printed is ``BENCH_SCENE {json}`` with the triangle count and settings.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from typing import Any

import bpy


def parse_args(argv: list[str]) -> argparse.Namespace:
    argv = argv[argv.index("--") + 1 :] if "--" in argv else []
    parser = argparse.ArgumentParser(prog="bench_scene.py", description=__doc__.splitlines()[0])
    parser.add_argument("--output", required=True, help=".blend file to write")
    parser.add_argument("--triangles", type=int, default=750_000, help="approximate triangle budget")
    parser.add_argument("--frames", type=int, default=64, help="frame range 1..FRAMES")
    parser.add_argument("--resolution", default="1280x720", help="WxH")
    parser.add_argument("--samples", type=int, default=128)
    parser.add_argument("--deforming", action="store_true", help="geometry that changes every frame")
    parser.add_argument("--denoise", action="store_true", help="keep Cycles denoising on (off by default)")
    return parser.parse_args(argv)


# -- materials ---------------------------------------------------------------------------------------------


def principled(name: str, **inputs) -> bpy.types.Material:
    material = bpy.data.materials.new(name)
    material.use_nodes = True
    bsdf = material.node_tree.nodes["Principled BSDF"]
    for key, value in inputs.items():
        bsdf.inputs[key].default_value = value
    return material


def emission(name: str, color, strength: float) -> bpy.types.Material:
    material = bpy.data.materials.new(name)
    material.use_nodes = True
    nodes, links = material.node_tree.nodes, material.node_tree.links
    for node in list(nodes):
        nodes.remove(node)
    shader = nodes.new("ShaderNodeEmission")
    shader.inputs["Color"].default_value = color
    shader.inputs["Strength"].default_value = strength
    output = nodes.new("ShaderNodeOutputMaterial")
    links.new(shader.outputs["Emission"], output.inputs["Surface"])
    return material


def checker_ground(name: str) -> bpy.types.Material:
    material = principled(name, **{"Roughness": 0.6})
    nodes, links = material.node_tree.nodes, material.node_tree.links
    checker = nodes.new("ShaderNodeTexChecker")
    checker.inputs["Scale"].default_value = 12.0
    checker.inputs["Color1"].default_value = (0.8, 0.8, 0.8, 1.0)
    checker.inputs["Color2"].default_value = (0.12, 0.12, 0.14, 1.0)
    links.new(checker.outputs["Color"], nodes["Principled BSDF"].inputs["Base Color"])
    return material


def make_materials() -> dict[str, bpy.types.Material]:
    return {
        "ground": checker_ground("Ground"),
        "glass": principled(
            "Glass",
            **{
                "Base Color": (0.95, 0.97, 1.0, 1.0),
                "Transmission Weight": 1.0,
                "Roughness": 0.02,
                "IOR": 1.45,
            },
        ),
        "chrome": principled("Chrome", **{"Base Color": (0.9, 0.9, 0.92, 1.0), "Metallic": 1.0, "Roughness": 0.12}),
        "gold": principled("Gold", **{"Base Color": (1.0, 0.72, 0.3, 1.0), "Metallic": 1.0, "Roughness": 0.3}),
        "copper": principled("Copper", **{"Base Color": (0.95, 0.5, 0.35, 1.0), "Metallic": 1.0, "Roughness": 0.2}),
        "warm": emission("EmissionWarm", (1.0, 0.55, 0.25, 1.0), 12.0),
        "cool": emission("EmissionCool", (0.3, 0.6, 1.0, 1.0), 12.0),
    }


# -- geometry ----------------------------------------------------------------------------------------------


def active() -> bpy.types.Object:
    return bpy.context.view_layer.objects.active


def triangles(obj: bpy.types.Object) -> int:
    mesh = obj.data
    mesh.calc_loop_triangles()
    return len(mesh.loop_triangles)


def assign(obj: bpy.types.Object, material: bpy.types.Material, smooth: bool = True) -> None:
    obj.data.materials.append(material)
    if smooth:
        obj.data.shade_smooth()


def add_grid(budget: int, size: float) -> bpy.types.Object:
    cuts = max(4, int(math.sqrt(budget / 2)))
    bpy.ops.mesh.primitive_grid_add(x_subdivisions=cuts, y_subdivisions=cuts, size=size, location=(0, 0, 0))
    return active()


def add_sphere(budget: int, radius: float, location) -> bpy.types.Object:
    # a UV sphere with S segments and R rings has about 2*S*(R-1) triangles; use R = S/2
    segments = max(8, int(math.sqrt(budget)))
    rings = max(4, segments // 2)
    bpy.ops.mesh.primitive_uv_sphere_add(segments=segments, ring_count=rings, radius=radius, location=location)
    return active()


def add_torus(budget: int, location) -> bpy.types.Object:
    minor = max(6, int(math.sqrt(budget / 2 / 3)))
    major = max(12, 3 * minor)
    bpy.ops.mesh.primitive_torus_add(
        major_segments=major, minor_segments=minor, major_radius=0.55, minor_radius=0.2, location=location
    )
    obj = active()
    obj.rotation_euler = (math.radians(70), 0.0, math.radians(20))
    return obj


def add_monkey(budget: int, location) -> bpy.types.Object:
    bpy.ops.mesh.primitive_monkey_add(size=1.0, location=location)
    obj = active()
    level = 0
    while level < 6 and 968 * 4 ** (level + 1) <= budget * 1.3:
        level += 1
    if level:
        modifier = obj.modifiers.new("Subdivision", "SUBSURF")
        modifier.levels = level
        modifier.render_levels = level
        bpy.ops.object.modifier_apply(modifier=modifier.name)
    obj.rotation_euler = (0.0, 0.0, math.radians(-30))
    return obj


def add_pillar(location, material) -> bpy.types.Object:
    bpy.ops.mesh.primitive_cylinder_add(vertices=24, radius=0.12, depth=2.4, location=location)
    obj = active()
    assign(obj, material, smooth=False)
    return obj


# -- animation ---------------------------------------------------------------------------------------------


def keyframe(owner, path: str, values: list[tuple[int, Any]]) -> None:
    """Key ``owner.path`` at (frame, value) pairs."""
    for frame, value in values:
        *parents, attribute = path.split(".")
        target = owner
        for parent in parents:
            target = getattr(target, parent)
        setattr(target, attribute, value)
        owner.keyframe_insert(data_path=path, frame=frame)


def make_wave(ground: bpy.types.Object, last: int) -> None:
    wave = ground.modifiers.new("Wave", "WAVE")
    wave.use_normal = False
    wave.width = 1.2
    wave.speed = 0.15
    wave.narrowness = 1.0
    wave.start_position_x = 0.0
    wave.start_position_y = 0.0
    # keyed too, so that inspection finds an animated modifier even without reading Wave's implicit time
    path = f'modifiers["{wave.name}"].height'
    wave.height = 0.15
    ground.keyframe_insert(data_path=path, frame=1)
    wave.height = 0.35
    ground.keyframe_insert(data_path=path, frame=max(2, last))


def make_shape_keys(obj: bpy.types.Object, last: int, phase: int) -> None:
    obj.shape_key_add(name="Basis", from_mix=False)
    inflate = obj.shape_key_add(name="Inflate", from_mix=False)
    mesh = obj.data
    for index, vertex in enumerate(mesh.vertices):
        ripple = 0.08 * math.sin(vertex.co.z * 9.0 + vertex.co.x * 5.0)
        inflate.data[index].co = vertex.co + vertex.normal * (0.06 + ripple)
    span = max(2, last)
    keys = [(1, 0.0), (max(1, span // 3 + phase), 1.0), (max(2, 2 * span // 3 + phase), 0.0), (span, 1.0)]
    seen = set()
    for frame, value in keys:
        if frame in seen:
            continue
        seen.add(frame)
        inflate.value = value
        inflate.keyframe_insert(data_path="value", frame=frame)


def make_twist(obj: bpy.types.Object, last: int, phase: float) -> None:
    twist = obj.modifiers.new("Twist", "SIMPLE_DEFORM")
    twist.deform_method = "TWIST"
    twist.deform_axis = "X"
    path = f'modifiers["{twist.name}"].angle'
    twist.angle = math.radians(-40 + phase)
    obj.keyframe_insert(data_path=path, frame=1)
    twist.angle = math.radians(60 + phase)
    obj.keyframe_insert(data_path=path, frame=max(2, last))


# -- scene -------------------------------------------------------------------------------------------------


def add_meshes(budget: int, deforming: bool, last: int) -> None:
    """The set within the triangle budget; with ``deforming`` its meshes change every frame."""
    materials = make_materials()
    # ground ~30 %, 4 monkeys ~30 %, 4 tori ~20 %, 3 glass spheres ~20 %
    ground = add_grid(int(budget * 0.30), size=30.0)
    ground.name = "Ground"
    assign(ground, materials["ground"], smooth=True)

    monkeys, tori, spheres = [], [], []
    metals = [materials["chrome"], materials["gold"], materials["copper"], materials["chrome"]]
    for index in range(4):
        x = -4.5 + 3.0 * index
        monkey = add_monkey(int(budget * 0.30 / 4), (x, 1.6, 1.0))
        monkey.name = f"Monkey{index}"
        assign(monkey, metals[index])
        monkeys.append(monkey)
        torus = add_torus(int(budget * 0.20 / 4), (x + 1.5, -1.2, 0.75))
        torus.name = f"Torus{index}"
        assign(torus, metals[(index + 1) % 4])
        tori.append(torus)
    for index in range(3):
        sphere = add_sphere(int(budget * 0.20 / 3), 0.8, (-3.0 + 3.0 * index, -0.2, 0.8))
        sphere.name = f"Glass{index}"
        assign(sphere, materials["glass"])
        spheres.append(sphere)
    for index in range(6):
        angle = 2 * math.pi * index / 6
        pillar = add_pillar(
            (7.5 * math.cos(angle), 5.0 * math.sin(angle), 1.2), materials["warm" if index % 2 else "cool"]
        )
        pillar.name = f"Pillar{index}"

    if deforming:
        make_wave(ground, last)
        for index, monkey in enumerate(monkeys):
            make_shape_keys(monkey, last, index)
        for index, torus in enumerate(tori):
            make_twist(torus, last, 15.0 * index)


def add_light_and_world(scene) -> None:
    # light and world
    bpy.ops.object.light_add(type="AREA", location=(2.0, -3.0, 7.0))
    light = active()
    light.data.energy = 1500.0
    light.data.size = 4.0
    world = bpy.data.worlds.new("World")
    world.use_nodes = True
    world.node_tree.nodes["Background"].inputs["Color"].default_value = (0.05, 0.06, 0.09, 1.0)
    world.node_tree.nodes["Background"].inputs["Strength"].default_value = 1.0
    scene.world = world


def add_camera(scene, last: int) -> None:
    # camera circling the set on a keyed pivot, aimed at the centre
    bpy.ops.object.empty_add(location=(0, 0, 0.8))
    target = active()
    target.name = "CameraTarget"
    bpy.ops.object.empty_add(location=(0, 0, 0))
    pivot = active()
    pivot.name = "CameraPivot"
    bpy.ops.object.camera_add(location=(0.0, -11.0, 4.5))
    camera = active()
    camera.parent = pivot
    camera.data.lens = 32.0
    aim = camera.constraints.new("TRACK_TO")
    aim.target = target
    aim.track_axis = "TRACK_NEGATIVE_Z"
    aim.up_axis = "UP_Y"
    scene.camera = camera
    keyframe(pivot, "rotation_euler", [(1, (0.0, 0.0, math.radians(-35))), (last, (0.0, 0.0, math.radians(35)))])


def render_settings(scene, options: argparse.Namespace, last: int) -> tuple[int, int]:
    """Cycles on the CPU (the runners choose devices), fixed work per frame; returns the resolution."""
    # render settings
    width, height = (int(part) for part in options.resolution.lower().split("x"))
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"  # the runners choose devices; CPU is what every machine has
    scene.cycles.samples = options.samples
    scene.cycles.use_adaptive_sampling = False  # every frame costs the same work
    scene.cycles.use_denoising = bool(options.denoise)
    scene.render.resolution_x = width
    scene.render.resolution_y = height
    scene.render.resolution_percentage = 100
    scene.render.use_persistent_data = False  # Blender's default; the runners turn it on where they should
    scene.render.image_settings.file_format = "PNG"
    scene.render.fps = 24
    scene.frame_start = 1
    scene.frame_end = last
    scene.frame_step = 1
    scene.render.filepath = "//frames/frame_####"
    return width, height


def build(options: argparse.Namespace) -> dict:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    last = max(1, options.frames)
    add_meshes(max(2_000, options.triangles), bool(options.deforming), last)
    add_light_and_world(scene)
    add_camera(scene, last)
    width, height = render_settings(scene, options, last)
    total = sum(triangles(obj) for obj in scene.objects if obj.type == "MESH")
    os.makedirs(os.path.dirname(os.path.abspath(options.output)), exist_ok=True)
    bpy.ops.wm.save_as_mainfile(filepath=os.path.abspath(options.output), compress=False)
    return {
        "path": options.output,
        "triangles": total,
        "frames": last,
        "resolution": [width, height],
        "samples": options.samples,
        "deforming": bool(options.deforming),
        "objects": len(scene.objects),
        "blender": bpy.app.version_string,
    }


def main() -> int:
    options = parse_args(sys.argv)
    info = build(options)
    print("BENCH_SCENE " + json.dumps(info), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
