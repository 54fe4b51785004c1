"""Output validation: a frame counts as done only when its file decodes completely.

Every pixel is decoded by a maintained library: Pillow for PNG, JPEG and TIFF (the fastest here, see
``python -m dispatcher.bench.validation``), OpenImageIO for OpenEXR (every part, layer and view). Where
one is missing (Blender's own Python running the extension's dispatcher) the other stands in; without
either, the structural checks of ``_structural`` are the last resort.
"""

from __future__ import annotations

import functools
import os
import re

from . import _structural

# The reader a frame's extension calls for (OpenImageIO format names).
FORMATS = {".png": "png", ".exr": "openexr", ".jpg": "jpeg", ".jpeg": "jpeg", ".tif": "tiff", ".tiff": "tiff"}
# Decoders stop at the last pixel; a file must also end where its format says it ends.
ENDINGS = {"png": b"\x00\x00\x00\x00IEND\xaeB`\x82", "jpeg": b"\xff\xd9"}


def expected_format(path: str) -> str | None:
    """The format a frame's name promises (a temporary ``.part`` name promises its frame's)."""
    name = re.sub(r"(\.grf-[^/\\]*)?\.part$", "", path)  # .frame_0001.png.grf-cpu0.part
    return FORMATS.get(os.path.splitext(name)[1].lower())


def check_image(path: str) -> str | None:
    """None when ``path`` holds a complete image of the format its name promises; else a short reason."""
    try:
        size = os.path.getsize(path)
    except OSError as error:
        return f"missing ({error.strerror})"
    if size == 0:
        return "empty file"
    expected = expected_format(path)
    try:
        problem = _decoder(expected)(path, expected)
    except MemoryError:
        return "too large to decode"
    except Exception as error:  # a decoder's own exception type: the file is not a whole image
        return _short(f"does not decode: {error}")
    if problem is None and expected in ENDINGS and not _ends_with(path, ENDINGS[expected]):
        return f"truncated {expected.upper()} (no end marker)"
    return problem


def _ends_with(path: str, ending: bytes) -> bool:
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        handle.seek(max(0, handle.tell() - len(ending) - 64))
        return handle.read().rstrip(b"\x00").endswith(ending)  # some writers pad with zeros


def decoder_name(expected: str | None) -> str:
    """Which library validates frames of a format here (shown by the benchmark and the docs)."""
    return {_check_oiio: "OpenImageIO", _check_pillow: "Pillow"}.get(_decoder(expected), "structural checks")


def _decoder(expected: str | None):
    """Pillow for the formats it reads, OpenImageIO for OpenEXR; each stands in for the other."""
    choices = [(_check_pillow, "PIL.Image")] if expected != "openexr" else []
    for check, module in [*choices, (_check_oiio, "OpenImageIO")]:
        if _importable(module):
            return check
    return _structural.check


@functools.cache  # asked for every frame: a failed import is not cached by Python and would search sys.path again
def _importable(module: str) -> bool:
    import importlib

    try:
        importlib.import_module(module)
        return True
    except ImportError:
        return False


def _check_oiio(path: str, expected: str | None) -> str | None:
    import OpenImageIO as oiio

    image = oiio.ImageInput.open(path)
    if image is None:
        return _short(f"does not decode: {oiio.geterror() or 'unknown format'}")
    try:
        found = image.format_name()
        if expected and found != expected:
            return f"not a {expected.upper()} file (found {found})"
        subimage = 0
        while image.seek_subimage(subimage, 0):
            spec = image.spec()
            if spec.width <= 0 or spec.height <= 0 or spec.nchannels <= 0:
                return "image with zero size"
            pixels = image.read_image(subimage, 0, 0, spec.nchannels, oiio.UNKNOWN)
            if pixels is None or image.has_error:
                return _short(f"does not decode: {image.geterror() or 'read failed'}")
            subimage += 1
        if subimage == 0:
            return _short(f"does not decode: {image.geterror() or 'no image'}")
        image.geterror()  # seeking past the last subimage leaves a harmless "no such subimage" error
        return None
    finally:
        image.close()


def _check_pillow(path: str, expected: str | None) -> str | None:
    from PIL import Image

    pillow_names = {"png": "PNG", "jpeg": "JPEG", "tiff": "TIFF"}
    with Image.open(path) as image:
        if expected and image.format != pillow_names.get(expected):
            return f"not a {expected.upper()} file (found {image.format})"
        if not image.width or not image.height:
            return "image with zero size"
        for index in range(getattr(image, "n_frames", 1)):
            image.seek(index)
            image.load()
    return None


def _short(text: str) -> str:
    return " ".join(text.split())[:200]


def image_size(path: str) -> tuple[int, int] | None:
    """Width and height of an image, or None when it cannot be read."""
    try:
        from PIL import Image

        with Image.open(path) as image:
            return image.size
    except Exception:
        return None
