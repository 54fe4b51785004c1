"""Pre-flight, run by Blender before any frame: every external file the scene needs, and its frame range.

Run by Blender:  blender -b --factory-startup --disable-autoexec FILE --python preflight_scene.py
Run by a Python with bpy:  python preflight_scene.py --blend FILE [--trust]

Prints one line ``GRF-PREFLIGHT {json}`` on stdout: ``files`` (every external path, from
``bpy.utils.blend_paths`` and the data-blocks that own them: linked libraries, images, movie clips,
sounds, fonts, volumes, cache files, sequencer strips), ``missing`` (those not on disk), the scene's
frame range, Blender's frame limits, the camera and the engine. Standalone: imports nothing from the
dispatcher package.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import sys

MARK = "GRF-PREFLIGHT "
FILE_SOURCES = {"FILE", "SEQUENCE", "MOVIE", "TILED"}  # images with no file: GENERATED, VIEWER
TOKENS = re.compile(r"<UDIM>|<UVTILE>|#+")  # tiles and frame numbers: any match on disk will do


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="preflight_scene.py")
    parser.add_argument("--blend")
    parser.add_argument("--trust", action="store_true")
    return parser.parse_args(argv)


def exists(path: str) -> bool:
    if os.path.exists(path):
        return True
    if TOKENS.search(path):  # a tiled texture or an image sequence: one file of it is enough here
        return bool(glob.glob(TOKENS.sub("*", glob.escape(path).replace("[*]", "*"))))
    return False


def owned_files(bpy) -> list[tuple[str, str, str]]:
    """(kind, data-block name, absolute path) for each data-block that reads a file."""
    found = []

    def add(kind, block, path):
        if path and not getattr(block, "packed_file", None) and not path.startswith("<"):
            library = getattr(block, "library", None)
            found.append((kind, block.name, os.path.normpath(bpy.path.abspath(path, library=library))))

    for library in bpy.data.libraries:
        add("linked library", library, library.filepath)
    for image in bpy.data.images:
        if image.source in FILE_SOURCES:
            add("image", image, image.filepath)
    for clip in bpy.data.movieclips:
        add("movie clip", clip, clip.filepath)
    for sound in bpy.data.sounds:
        add("sound", sound, sound.filepath)
    for font in bpy.data.fonts:
        add("font", font, font.filepath)
    for volume in bpy.data.volumes:
        add("volume", volume, volume.filepath)
    for cache in bpy.data.cache_files:
        add("cache file", cache, cache.filepath)
    for scene in bpy.data.scenes:
        editor = scene.sequence_editor
        for strip in getattr(editor, "strips_all", None) or getattr(editor, "sequences_all", None) or []:
            if strip.type in ("MOVIE", "SOUND") and getattr(strip, "filepath", None):
                add(f"{strip.type.lower()} strip", strip, strip.filepath)
            elif strip.type == "IMAGE" and strip.elements:
                add("image strip", strip, os.path.join(strip.directory, strip.elements[0].filename))
    return found


def output_folders(bpy, scene) -> list[str]:
    """Folders the compositor's File Output nodes write to (they must be writable like the output folder)."""
    tree = getattr(scene, "compositing_node_group", None) or getattr(scene, "node_tree", None)
    if tree is None or not scene.render.use_compositing:
        return []
    folders, trees, seen = set(), [tree], set()
    while trees:
        current = trees.pop()
        for node in current.nodes:
            if node.bl_idname == "CompositorNodeOutputFile" and not node.mute:
                folders.add(os.path.normpath(bpy.path.abspath(node.directory)))
            elif getattr(node, "node_tree", None) is not None and node.node_tree.name not in seen:
                seen.add(node.node_tree.name)
                trees.append(node.node_tree)
    return sorted(folders)


def collect(bpy) -> dict:
    scene = bpy.context.scene
    files = {path: (kind, name) for kind, name, path in owned_files(bpy)}
    for path in bpy.utils.blend_paths(absolute=True, packed=False, local=False):
        files.setdefault(os.path.normpath(path), ("file", ""))  # caches, modifiers, anything else Blender reads
    missing = [{"kind": kind, "name": name, "path": path} for path, (kind, name) in files.items() if not exists(path)]
    current = bpy.types.Scene.bl_rna.properties["frame_current"]  # what frame_set clamps to
    return {
        "blend": bpy.data.filepath,
        "scene": scene.name,
        "files": sorted(files),
        "missing": missing,
        "frame_start": scene.frame_start,
        "frame_end": scene.frame_end,
        "frame_step": scene.frame_step,
        "min_frame": int(current.hard_min),
        "max_frame": int(current.hard_max),
        "camera": scene.camera is not None,
        "output_folders": output_folders(bpy, scene),
        "engine": scene.render.engine,
        "file_format": scene.render.image_settings.file_format,
    }


def main() -> None:
    argv = sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else sys.argv[1:]
    args = parse_args(argv)
    try:
        import bpy

        if args.blend:
            bpy.ops.wm.open_mainfile(filepath=args.blend, load_ui=False, use_scripts=args.trust)
        facts = collect(bpy)
    except Exception as error:
        facts = {"error": " ".join(str(error).split()) or type(error).__name__}
    sys.stdout.write(MARK + json.dumps(facts) + "\n")
    sys.stdout.flush()
    os._exit(0)  # skip Blender's slow teardown


if __name__ == "__main__":
    main()
