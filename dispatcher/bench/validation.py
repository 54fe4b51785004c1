"""Cost of validating one 1920x1080 frame, per format and decoder: ``python -m dispatcher.bench.validation``.

Blender itself writes the frames (its PNG, JPEG, TIFF and OpenEXR writers with the scene's default
settings; the multilayer EXR, which Blender writes only from a render result, is written by
OpenImageIO with five passes, half float, ZIP), from two pictures: a smooth render-like gradient with
mild noise, and a worst case of heavy noise (which compresses worst and so decodes slowest). Each
decoder then validates each file ``--repeat`` times; the table shows the median in milliseconds.
Run as a script with ``--write DIR`` it is the Blender side (the only code here that imports bpy).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

WIDTH, HEIGHT = 1920, 1080
TARGET_MS = 50.0
FORMATS = (("PNG", "png"), ("JPEG", "jpg"), ("TIFF", "tif"), ("OPEN_EXR", "exr"), ("OPEN_EXR_MULTILAYER", "exr"))
LAYERS = ("Combined", "Depth", "Normal", "DiffCol", "Denoising Albedo")
PICTURES = {"render-like": 0.01, "heavy noise": 0.08}


def write_frames(directory: str) -> None:
    """Blender side: write every format from both pictures with Blender's own writers."""
    import bpy
    import numpy

    scene = bpy.context.scene
    scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage = WIDTH, HEIGHT, 100
    rows, columns = numpy.mgrid[0:HEIGHT, 0:WIDTH].astype(numpy.float32)
    random = numpy.random.default_rng(7)
    for picture, noise in PICTURES.items():
        rgba = numpy.stack([columns / WIDTH, rows / HEIGHT, (rows * columns) / (WIDTH * HEIGHT), numpy.ones_like(rows)])
        rgba = rgba.transpose(1, 2, 0) + random.normal(0.0, noise, (HEIGHT, WIDTH, 4)).astype(numpy.float32)
        rgba[..., 3] = 1.0
        image = bpy.data.images.new(picture, WIDTH, HEIGHT, alpha=True, float_buffer=True)
        image.pixels.foreach_set(numpy.clip(rgba, 0.0, 1.0).astype(numpy.float32).ravel())
        for file_format, extension in FORMATS[:-1]:
            scene.render.image_settings.file_format = file_format
            name = f"{picture.replace(' ', '_')}-{file_format}.{extension}"
            image.save_render(filepath=os.path.join(directory, name), scene=scene)
        numpy.save(os.path.join(directory, f"{picture.replace(' ', '_')}.npy"), rgba[..., :3].astype(numpy.float16))


def write_multilayer(directory: str) -> None:
    """Five passes of three channels each in one EXR part, as a multilayer render has."""
    import numpy
    import OpenImageIO as oiio

    for picture in PICTURES:
        stem = os.path.join(directory, picture.replace(" ", "_"))
        rgb = numpy.load(f"{stem}.npy")
        names = [f"ViewLayer.{layer}.{channel}" for layer in LAYERS for channel in "RGB"]
        spec = oiio.ImageSpec(WIDTH, HEIGHT, len(names), oiio.HALF)
        spec.channelnames = names
        spec.attribute("compression", "zip")
        output = oiio.ImageOutput.create("openexr")
        output.open(f"{stem}-OPEN_EXR_MULTILAYER.exr", spec)
        output.write_image(numpy.concatenate([numpy.roll(rgb, shift, axis=1) for shift in range(len(LAYERS))], axis=2))
        output.close()


def measure(directory: str, repeat: int) -> list[dict]:
    from .. import images

    decoders = {"OpenImageIO": images._check_oiio, "Pillow": images._check_pillow}
    rows = []
    for picture in PICTURES:
        for file_format, extension in FORMATS:
            path = os.path.join(directory, f"{picture.replace(' ', '_')}-{file_format}.{extension}")
            row = {"picture": picture, "format": file_format, "mb": os.path.getsize(path) / 2**20}
            for name, decoder in decoders.items():
                if name == "Pillow" and extension == "exr":
                    row[name] = None
                    continue
                images._decoder = lambda expected, decoder=decoder: decoder
                assert images.check_image(path) is None, (name, path, images.check_image(path))
                times = []
                for _ in range(repeat):
                    started = time.perf_counter()
                    images.check_image(path)
                    times.append(1000.0 * (time.perf_counter() - started))
                row[name] = statistics.median(times)
            rows.append(row)
    return rows


def table(rows: list[dict]) -> str:
    lines = [f"{'picture':<12} {'format':<20} {'MiB':>6} {'OpenImageIO ms':>15} {'Pillow ms':>10} {'<= 50 ms':>9}"]
    for row in rows:
        best = min(value for value in (row["OpenImageIO"], row["Pillow"]) if value is not None)
        pillow = f"{row['Pillow']:.1f}" if row["Pillow"] is not None else "-"
        lines.append(
            f"{row['picture']:<12} {row['format']:<20} {row['mb']:>6.2f} {row['OpenImageIO']:>15.1f} {pillow:>10} "
            f"{'yes' if best <= TARGET_MS else 'NO':>9}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dispatcher.bench.validation")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--python", default=sys.executable, help="a Python with bpy that writes the frames")
    parser.add_argument("--write", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.write:
        write_frames(args.write)
        return 0
    with tempfile.TemporaryDirectory(prefix="grf-validate-") as directory:
        subprocess.run([args.python, os.path.abspath(__file__), "--write", directory], check=True, capture_output=True)
        write_multilayer(directory)
        print(f"{WIDTH}x{HEIGHT}, median of {args.repeat}, {os.cpu_count()} CPUs")
        print(table(measure(directory, args.repeat)))
    return 0


if __name__ == "__main__":
    if "--write" in sys.argv:  # the Blender side runs by path, outside the package
        write_frames(sys.argv[sys.argv.index("--write") + 1])
    else:
        sys.exit(main())
