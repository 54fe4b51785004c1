"""Encode rendered frames into an H.264 MP4 with Blender's own FFmpeg, keeping the scene's sound.

Run by a Python with bpy or by Blender (the dispatcher launches it by path; it imports nothing else):
  python encode_video.py --frames LIST.txt --out movie.mp4 --fps 24 [--blend scene.blend]
LIST.txt holds one frame path per line, in order. With --blend, the scene's sound strips are mixed in.
"""

from __future__ import annotations

import argparse
import os
import sys


def parse_args() -> argparse.Namespace:
    argv = sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else sys.argv[1:]
    parser = argparse.ArgumentParser(prog="encode_video.py")
    parser.add_argument("--frames", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--fps", type=float, default=24.0)
    parser.add_argument("--blend")
    return parser.parse_args(argv)


def main() -> None:
    import bpy

    args = parse_args()
    with open(args.frames, encoding="utf-8") as handle:
        frames = [line.rstrip("\n") for line in handle if line.strip()]
    if args.blend:
        bpy.ops.wm.open_mainfile(filepath=args.blend, load_ui=False, use_scripts=False)
    else:
        bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    editor = scene.sequence_editor or scene.sequence_editor_create()
    strips = editor.strips if hasattr(editor, "strips") else editor.sequences  # 4.4+ renamed it
    sound_start = scene.frame_start
    for strip in list(strips):
        if strip.type != "SOUND":
            strips.remove(strip)
    top = max([strip.channel for strip in strips] + [0]) + 1
    directory = os.path.dirname(frames[0])
    image = strips.new_image("frames", frames[0], channel=top, frame_start=sound_start)
    for path in frames[1:]:
        if os.path.dirname(path) != directory:
            raise SystemExit("all frames must be in one folder")
        image.elements.append(os.path.basename(path))
    width, height = bpy.data.images.load(frames[0]).size[:]
    render = scene.render
    render.resolution_x, render.resolution_y, render.resolution_percentage = width + width % 2, height + height % 2, 100
    render.fps, render.fps_base = round(args.fps), round(args.fps) / args.fps
    scene.frame_start, scene.frame_end = sound_start, sound_start + len(frames) - 1
    render.use_sequencer, render.use_compositing = True, False
    settings = render.image_settings
    if hasattr(settings, "media_type"):
        settings.media_type = "VIDEO"
    settings.file_format = "FFMPEG"
    render.ffmpeg.format, render.ffmpeg.codec = "MPEG4", "H264"
    render.ffmpeg.constant_rate_factor = "HIGH"
    has_sound = any(strip.type == "SOUND" for strip in strips)
    render.ffmpeg.audio_codec = "AAC" if has_sound else "NONE"
    render.use_file_extension = False
    render.filepath = args.out
    bpy.ops.render.render(animation=True, scene=scene.name)
    if not os.path.exists(args.out):
        raise SystemExit(f"Blender wrote no video at {args.out}")
    print(f"encoded {len(frames)} frames{' with sound' if has_sound else ''} -> {args.out}")


if __name__ == "__main__":
    main()
