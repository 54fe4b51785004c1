"""Edit a saved test scene as an artist would, with the real bpy module (run as a script).

python edit_scene.py FILE [--save-as OTHER] [--world R,G,B] [--filepath PATH] [--overwrite 0|1]
                          [--placeholder 0|1] [--extension 0|1] [--frames START-END]
"""

from __future__ import annotations

import argparse
import sys


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("blend")
    parser.add_argument("--save-as")
    parser.add_argument("--world", help="background colour R,G,B")
    parser.add_argument("--filepath", help="the scene's output path")
    parser.add_argument("--overwrite", type=int)
    parser.add_argument("--placeholder", type=int)
    parser.add_argument("--extension", type=int)
    parser.add_argument("--frames")
    args = parser.parse_args(sys.argv[1:])
    import bpy

    bpy.ops.wm.open_mainfile(filepath=args.blend, load_ui=False, use_scripts=False)
    scene = bpy.context.scene
    render = scene.render
    if args.world:
        color = [float(value) for value in args.world.split(",")]
        scene.world.node_tree.nodes["Background"].inputs["Color"].default_value = (*color, 1.0)
        scene.world.node_tree.nodes["Background"].inputs["Strength"].default_value = 3.0
    if args.filepath is not None:
        render.filepath = args.filepath
    for flag, name in ((args.overwrite, "use_overwrite"), (args.placeholder, "use_placeholder"),
                       (args.extension, "use_file_extension")):  # fmt: skip
        if flag is not None:
            setattr(render, name, bool(flag))
    if args.frames:
        scene.frame_start, scene.frame_end = (int(value) for value in args.frames.split("-"))
    bpy.ops.wm.save_as_mainfile(filepath=args.save_as or args.blend, copy=bool(args.save_as))


if __name__ == "__main__":
    main()
