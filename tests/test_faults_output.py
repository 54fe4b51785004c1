"""Output validation on real renders: a frame counts only when every pixel decodes, whatever the exit code said."""

import struct
import zlib

import pytest

from dispatcher import images, jobs
from dispatcher.devices import DeviceReport
from dispatcher.images import check_image, image_size
from dispatcher.runner import run_job
from dispatcher.spec import JobSpec

FORMATS = {"PNG": "png", "OPEN_EXR": "exr", "OPEN_EXR_MULTILAYER": "exr", "JPEG": "jpg", "TIFF": "tif"}


@pytest.fixture(scope="module")
def rendered(tiny_blend, tmp_path_factory) -> dict:
    """One real Cycles frame in each format the farm offers: {"PNG": path, ...}."""
    root = tmp_path_factory.mktemp("formats")
    paths = {}
    for file_format, extension in FORMATS.items():
        out = root / file_format
        spec = JobSpec(blend=str(tiny_blend), output_dir=str(out), device_type="CPU", frames="1",
                       file_format=file_format)  # fmt: skip
        job = jobs.create_job(spec, job_dir=str(root / f"job-{file_format}"))
        status = run_job(job, report=DeviceReport(gpus=[], cpu={"usable_cores": 2}), handle_signals=False)
        assert status["state"] == "done"
        paths[file_format] = out / f"frame_0001.{extension}"
    return paths


@pytest.fixture(params=["OpenImageIO", "Pillow"])
def decoder(request, monkeypatch):
    """Both decoders, each standing in for the other where one is missing (Pillow reads no OpenEXR)."""
    chosen = images._check_oiio if request.param == "OpenImageIO" else images._check_pillow
    monkeypatch.setattr(images, "_decoder", lambda expected: chosen)
    return request.param


@pytest.mark.parametrize("file_format", list(FORMATS))
def test_whole_real_frames_pass_and_every_truncation_fails(rendered, file_format, decoder, tmp_path):
    if decoder == "Pillow" and file_format.startswith("OPEN_EXR"):
        pytest.skip("Pillow reads no OpenEXR (the structural fallback is tested below)")
    data = rendered[file_format].read_bytes()
    assert check_image(str(rendered[file_format])) is None
    damaged = tmp_path / rendered[file_format].name
    for cut in sorted({0, 1, 8, 16, len(data) // 3, len(data) // 2, len(data) - 2, len(data) - 1}):
        damaged.write_bytes(data[:cut])
        assert check_image(str(damaged)) is not None, f"{file_format} cut at {cut} of {len(data)} bytes passed"
    damaged.write_bytes(b"")
    assert check_image(str(damaged)) == "empty file"


@pytest.mark.parametrize("file_format", ["PNG", "OPEN_EXR", "OPEN_EXR_MULTILAYER"])
def test_damage_inside_the_compressed_pixels_fails(rendered, file_format, tmp_path):
    """Header checks pass these (the end marker and the offsets are intact); a full decode does not.

    (TIFF is left out: its strips carry no checksum, so zeroed bytes can still be valid pixels.)
    """
    data = bytearray(rendered[file_format].read_bytes())
    damaged = tmp_path / rendered[file_format].name
    start = len(data) * 2 // 3
    data[start : start + 16] = bytes(16)
    damaged.write_bytes(bytes(data))
    assert check_image(str(damaged)) is not None, f"{file_format} with 16 zeroed bytes at {start} passed"


def test_a_jpeg_cut_in_the_middle_but_ending_in_its_end_marker_fails(rendered, decoder, tmp_path):
    data = rendered["JPEG"].read_bytes()
    spliced = tmp_path / "frame_0001.jpg"
    spliced.write_bytes(data[: len(data) // 2] + b"\xff\xd9")  # what a naive end-marker check accepts
    assert check_image(str(spliced)) is not None


def test_a_tiff_with_its_pixels_cut_off_fails(rendered, decoder, tmp_path):
    data = rendered["TIFF"].read_bytes()
    assert data[:4] in (b"II*\x00", b"MM\x00*")
    cut = tmp_path / "frame_0001.tif"
    cut.write_bytes(data[:64])  # the magic and more: a magic-number check passes this
    assert check_image(str(cut)) is not None


def test_png_with_a_corrupt_chunk_or_zero_size_header_fails(rendered, decoder, tmp_path):
    data = bytearray(rendered["PNG"].read_bytes())
    assert image_size(str(rendered["PNG"])) == (32, 32)
    flipped = tmp_path / "flipped.png"
    middle = len(data) // 2
    flipped.write_bytes(bytes(data[:middle]) + bytes([data[middle] ^ 0xFF]) + bytes(data[middle + 1 :]))
    assert check_image(str(flipped)) is not None
    header = struct.pack(">IIBBBBB", 0, 32, 8, 2, 0, 0, 0)  # a 0x32 image with a valid CRC
    chunk = struct.pack(">I", 13) + b"IHDR" + header + struct.pack(">I", zlib.crc32(b"IHDR" + header) & 0xFFFFFFFF)
    zero = tmp_path / "zero.png"
    zero.write_bytes(bytes(data[:8]) + chunk + bytes(data[33:]))
    assert check_image(str(zero)) is not None


def test_a_different_format_under_the_frame_name_fails(rendered, decoder, tmp_path):
    wrong = tmp_path / "frame_0001.png"
    wrong.write_bytes(rendered["JPEG"].read_bytes())  # a whole JPEG named .png
    assert "not a PNG file" in check_image(str(wrong))
    text = tmp_path / "frame_0002.exr"
    text.write_text("Blender quit\n")
    assert check_image(str(text)) is not None
    part = tmp_path / ".frame_0003.png.grf-cpu0.part"  # a temporary name promises its frame's format
    part.write_bytes(rendered["PNG"].read_bytes())
    assert check_image(str(part)) is None
    part.write_bytes(rendered["JPEG"].read_bytes())
    assert "not a PNG file" in check_image(str(part))


def test_the_structural_fallback_still_rejects_truncation(rendered, monkeypatch, tmp_path):
    """Blender's own Python (the extension's dispatcher) may have neither library: the last resort still works."""
    monkeypatch.setattr(images, "_decoder", lambda expected: images._structural.check)
    for file_format in ("PNG", "OPEN_EXR", "JPEG"):
        data = rendered[file_format].read_bytes()
        assert check_image(str(rendered[file_format])) is None
        damaged = tmp_path / rendered[file_format].name
        damaged.write_bytes(data[: len(data) // 2])
        assert check_image(str(damaged)) is not None


def test_each_format_goes_to_its_library():
    assert {name: images.decoder_name(name) for name in ("png", "jpeg", "tiff", "openexr")} == {
        "png": "Pillow", "jpeg": "Pillow", "tiff": "Pillow", "openexr": "OpenImageIO"}  # fmt: skip
