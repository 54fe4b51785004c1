"""Cost of validating one 1920x1080 frame, per format and decoder: ``python -m dispatcher.bench.validation``.

Blender itself writes the frames (its PNG, JPEG, TIFF and OpenEXR writers with the scene's default
settings; the multilayer EXR, which Blender writes only from a render result, is written by
OpenImageIO with five passes, half float, ZIP), from two pictures: a smooth render-like gradient with
mild noise, and a worst case of heavy noise (which compresses worst and so decodes slowest). Each
decoder then validates each file ``--repeat`` times; the table shows the median in milliseconds.
The Blender side is ``blender_scripts/validation_frames.py``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

from ..blender_scripts import VALIDATION_FRAMES
from ..process import blender_command

WIDTH, HEIGHT = 1920, 1080
TARGET_MS = 50.0
FORMATS = (("PNG", "png"), ("JPEG", "jpg"), ("TIFF", "tif"), ("OPEN_EXR", "exr"), ("OPEN_EXR_MULTILAYER", "exr"))
LAYERS = ("Combined", "Depth", "Normal", "DiffCol", "Denoising Albedo")
PICTURES = {"render-like": 0.01, "heavy noise": 0.08}
PICTURES_ARGS = [f"{name}={noise}" for name, noise in PICTURES.items()]


def write_multilayer(directory: str) -> None:
    """Five passes of three channels each in one EXR part, as a multilayer render has."""
    import numpy
    import OpenImageIO as oiio

    for picture in PICTURES:
        stem = os.path.join(directory, picture.replace(" ", "_"))
        rgb = numpy.load(f"{stem}.npy")
        names = [f"ViewLayer.{layer}.{channel}" for layer in LAYERS for channel in "RGB"]
        spec = oiio.ImageSpec(WIDTH, HEIGHT, len(names), oiio.HALF)
        spec.channelnames = tuple(names)
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
                images._decoder = _fixed(decoder)
                assert images.check_image(path) is None, (name, path, images.check_image(path))
                times = []
                for _ in range(repeat):
                    started = time.perf_counter()
                    images.check_image(path)
                    times.append(1000.0 * (time.perf_counter() - started))
                row[name] = statistics.median(times)
            rows.append(row)
    return rows


def _fixed(decoder):
    """A stand-in for images._decoder that always picks ``decoder``."""
    return lambda _expected: decoder


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
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="grf-validate-") as directory:
        argv = blender_command(args.python, VALIDATION_FRAMES, [directory, str(WIDTH), str(HEIGHT), *PICTURES_ARGS])
        subprocess.run(argv, check=True, capture_output=True)
        write_multilayer(directory)
        print(f"{WIDTH}x{HEIGHT}, median of {args.repeat}, {os.cpu_count()} CPUs")
        print(table(measure(directory, args.repeat)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
