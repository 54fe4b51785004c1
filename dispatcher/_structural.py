"""Last-resort structural checks, used only where neither OpenImageIO nor Pillow can be imported.

They walk PNG chunks (CRCs), the EXR scanline offset table and JPEG markers without decoding pixels.
"""

from __future__ import annotations

import struct
import zlib

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
EXR_MAGIC = b"\x76\x2f\x31\x01"


def check(path: str, expected: str | None = None) -> str | None:
    """None when ``path`` looks like a complete image; otherwise a short reason. The caller
    (``images.check_image``) has already refused a missing or empty file and says which format the
    frame's name promises (``png``, ``openexr``, ``jpeg``, ``tiff`` or None)."""
    with open(path, "rb") as handle:
        data = handle.read()
    if expected == "png" or data.startswith(PNG_SIGNATURE):
        return _check_png(data)
    if expected == "openexr" or data.startswith(EXR_MAGIC):
        return _check_exr(data)
    if expected == "jpeg" or data.startswith(b"\xff\xd8"):
        return _check_jpeg(data)
    if expected == "tiff":
        return None if data[:4] in (b"II*\x00", b"MM\x00*") and len(data) > 8 else "not a TIFF"
    return None if data else "empty file"


def _check_png(data: bytes) -> str | None:
    """Walk every chunk, checking CRCs, a sane IHDR and the closing IEND."""
    if not data.startswith(PNG_SIGNATURE):
        return "not a PNG"
    offset, seen_header, seen_data = 8, False, False
    while offset + 12 <= len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        body_end = offset + 8 + length
        if body_end + 4 > len(data):
            return "truncated PNG"
        (crc,) = struct.unpack(">I", data[body_end : body_end + 4])
        if zlib.crc32(data[offset + 4 : body_end]) & 0xFFFFFFFF != crc:
            return f"corrupt PNG chunk {kind!r}"
        if kind == b"IHDR":
            width, height = struct.unpack(">II", data[offset + 8 : offset + 16])
            if not width or not height:
                return "PNG with zero size"
            seen_header = True
        elif kind == b"IDAT":
            seen_data = True
        elif kind == b"IEND":
            return None if seen_header and seen_data else "PNG without image data"
        offset = body_end + 4
    return "truncated PNG"


_EXR_LINES_PER_CHUNK = {0: 1, 1: 1, 2: 1, 3: 16, 4: 32, 5: 16, 6: 32, 7: 32, 8: 32, 9: 256}


def _check_exr(data: bytes) -> str | None:
    """Header attributes, then every scanline chunk of the offset table lies whole inside the file."""
    if not data.startswith(EXR_MAGIC) or len(data) < 16:
        return "not an OpenEXR file"
    flags = struct.unpack("<I", data[4:8])[0]
    offset, attributes = 8, {}
    while True:
        if offset >= len(data):
            return "truncated OpenEXR header"
        if data[offset] == 0:
            offset += 1
            break
        name_end = data.find(b"\x00", offset)
        type_end = data.find(b"\x00", name_end + 1)
        if name_end < 0 or type_end < 0 or type_end + 4 > len(data):
            return "truncated OpenEXR header"
        (size,) = struct.unpack("<i", data[type_end + 1 : type_end + 5])
        value_start = type_end + 5
        attributes[data[offset:name_end].decode("latin-1")] = data[value_start : value_start + size]
        offset = value_start + size
    if flags & 0x1200:  # tiled or multi-part: the header is all we check
        return None
    window = attributes.get("dataWindow")
    compression = attributes.get("compression", b"\x00")[:1]
    if not window or len(window) != 16:
        return "OpenEXR without a data window"
    _x_min, y_min, _x_max, y_max = struct.unpack("<iiii", window)
    if y_max < y_min:
        return "OpenEXR with an empty data window"
    lines = _EXR_LINES_PER_CHUNK.get(compression[0], 1)
    chunks = -(-(y_max - y_min + 1) // lines)
    table_end = offset + 8 * chunks
    if table_end > len(data):
        return "truncated OpenEXR offset table"
    offsets = struct.unpack(f"<{chunks}Q", data[offset:table_end])
    last = max(offsets)
    if last + 8 > len(data):
        return "truncated OpenEXR"
    (chunk_size,) = struct.unpack("<i", data[last + 4 : last + 8])
    return None if last + 8 + chunk_size <= len(data) else "truncated OpenEXR"


def _check_jpeg(data: bytes) -> str | None:
    if not data.startswith(b"\xff\xd8"):
        return "not a JPEG"
    if not data.rstrip(b"\x00").endswith(b"\xff\xd9"):
        return "truncated JPEG"
    return None
