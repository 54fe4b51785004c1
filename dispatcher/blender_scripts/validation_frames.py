"""Blender side of ``python -m dispatcher.bench.validation``: one picture per noise level, written by
Blender's own PNG, JPEG, TIFF and OpenEXR writers with their default settings.

python validation_frames.py -- DIR WIDTH HEIGHT NAME=NOISE [NAME=NOISE ...]
"""

from __future__ import annotations

import os
import sys

FORMATS = (("PNG", "png"), ("JPEG", "jpg"), ("TIFF", "tif"), ("OPEN_EXR", "exr"))


def write_frames(directory: str, width: int, height: int, pictures: dict[str, float]) -> None:
    import bpy
    import numpy

    scene = bpy.context.scene
    scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage = width, height, 100
    rows, columns = numpy.mgrid[0:height, 0:width].astype(numpy.float32)
    random = numpy.random.default_rng(7)
    for picture, noise in pictures.items():
        rgba = numpy.stack([columns / width, rows / height, (rows * columns) / (width * height), numpy.ones_like(rows)])
        rgba = rgba.transpose(1, 2, 0) + random.normal(0.0, noise, (height, width, 4)).astype(numpy.float32)
        rgba[..., 3] = 1.0
        image = bpy.data.images.new(picture, width, height, alpha=True, float_buffer=True)
        image.pixels.foreach_set(numpy.clip(rgba, 0.0, 1.0).astype(numpy.float32).ravel())
        for file_format, extension in FORMATS:
            scene.render.image_settings.file_format = file_format
            name = f"{picture.replace(' ', '_')}-{file_format}.{extension}"
            image.save_render(filepath=os.path.join(directory, name), scene=scene)
        numpy.save(os.path.join(directory, f"{picture.replace(' ', '_')}.npy"), rgba[..., :3].astype(numpy.float16))


if __name__ == "__main__":
    args = sys.argv[sys.argv.index("--") + 1 :]
    named = dict(item.split("=", 1) for item in args[3:])
    write_frames(args[0], int(args[1]), int(args[2]), {name: float(noise) for name, noise in named.items()})
