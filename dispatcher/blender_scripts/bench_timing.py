"""Render a frame range the way plain Blender does (a bpy script; never imported by the dispatcher).

This is the reference the benchmark compares the product with: one Blender process that renders
``--frames A-B`` as ``blender -b FILE -s A -e B -a`` would (``bpy.ops.render.render(animation=True)``),
on every GPU of ``--device`` type that it can see (so ``CUDA_VISIBLE_DEVICES`` set by the caller pins it)
or on the CPU with ``--threads``. Each render event is appended to ``--timing`` as one JSON line:
``{"event": "init|pre|post|write|complete|cancel", "frame": n, "t": epoch seconds}``, so the benchmark can
draw a per-frame timeline without changing how Blender renders.

    python dispatcher/blender_scripts/bench_timing.py -- --blend B.blend --frames 1-8 --output DIR --device CPU \
        --timing t.jsonl [--persistent-data 0|1] [--threads N] [--samples N] [--resolution WxH]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import bpy


def parse_args(argv: list[str]) -> argparse.Namespace:
    argv = argv[argv.index("--") + 1 :] if "--" in argv else []
    parser = argparse.ArgumentParser(prog="bench_timing.py")
    parser.add_argument("--blend", required=True)
    parser.add_argument("--frames", required=True, help="A-B or A")
    parser.add_argument("--output", required=True, help="folder for frame_####.png")
    parser.add_argument("--device", default="CPU", type=str.upper, help="CPU, OPTIX, CUDA, HIP, ...")
    parser.add_argument("--timing", required=True, help="JSON-lines file for render events")
    parser.add_argument("--persistent-data", type=int, default=-1, help="1/0; -1 keeps the file's setting")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: Blender's automatic count)")
    parser.add_argument("--samples", type=int, default=0)
    parser.add_argument("--resolution", default="")
    return parser.parse_args(argv)


class Timing:
    def __init__(self, path: str) -> None:
        self.handle = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed at exit

    def __call__(self, event: str, frame: int | None = None, **extra) -> None:
        record = {"event": event, "frame": frame, "t": time.time(), **extra}
        self.handle.write(json.dumps(record) + "\n")
        self.handle.flush()


def enable_devices(scene, device: str) -> list[str]:
    prefs = bpy.context.preferences.addons["cycles"].preferences
    if device == "CPU":
        prefs.compute_device_type = "NONE"
        scene.cycles.device = "CPU"
        return ["CPU"]
    prefs.compute_device_type = device
    prefs.refresh_devices()
    used = []
    for entry in prefs.devices:
        entry.use = entry.type == device
        if entry.use:
            used.append(f"{entry.name} [{entry.id}]")
    if not used:
        raise SystemExit(f"no {device} device visible to Cycles; refusing to fall back to the CPU")
    scene.cycles.device = "GPU"
    return used


def main() -> int:
    args = parse_args(sys.argv)
    timing = Timing(args.timing)
    timing("launch")
    bpy.ops.wm.open_mainfile(filepath=args.blend, load_ui=False)
    scene = bpy.context.scene
    render = scene.render
    used = enable_devices(scene, args.device)
    if args.persistent_data in (0, 1):
        render.use_persistent_data = bool(args.persistent_data)
    if args.threads > 0:
        render.threads_mode = "FIXED"
        render.threads = args.threads
    if args.samples > 0:
        scene.cycles.samples = args.samples
    if args.resolution:
        render.resolution_x, render.resolution_y = (int(part) for part in args.resolution.lower().split("x"))
        render.resolution_percentage = 100
    first, _, last = args.frames.partition("-")
    scene.frame_start = int(first)
    scene.frame_end = int(last or first)
    scene.frame_step = 1
    render.image_settings.file_format = "PNG"
    render.filepath = os.path.join(os.path.abspath(args.output), "frame_####")
    render.use_overwrite = True

    def handler(event):
        def record(scene_arg, *_rest):
            timing(event, scene_arg.frame_current)

        return record

    for event in ("init", "pre", "post", "write", "complete", "cancel"):
        getattr(bpy.app.handlers, f"render_{event}").append(handler(event))
    print(
        "BENCH_DEVICES "
        + json.dumps(
            {
                "device": args.device,
                "used": used,
                "persistent_data": render.use_persistent_data,
                "threads": render.threads,
            }
        ),
        flush=True,
    )
    timing("loaded", scene.frame_start)
    bpy.ops.render.render(animation=True)
    timing("exit", scene.frame_end)
    return 0


if __name__ == "__main__":
    sys.exit(main())
