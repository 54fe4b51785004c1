"""Output validation on real renders: a frame counts only when its file decodes, whatever the exit code said."""

import struct
import zlib

import pytest

from dispatcher import jobs
from dispatcher.devices import DeviceReport
from dispatcher.images import check_image, image_size
from dispatcher.runner import run_job
from dispatcher.spec import JobSpec


@pytest.fixture(scope="module")
def rendered(tiny_blend, tmp_path_factory) -> dict:
    """One real Cycles frame in each format the validator knows: {"PNG": path, ...}."""
    root = tmp_path_factory.mktemp("formats")
    paths = {}
    for file_format, extension in (("PNG", "png"), ("OPEN_EXR", "exr"), ("JPEG", "jpg")):
        out = root / file_format
        spec = JobSpec(blend=str(tiny_blend), output_dir=str(out), device_type="CPU", frames="1",
                       file_format=file_format)  # fmt: skip
        job = jobs.create_job(spec, job_dir=str(root / f"job-{file_format}"))
        status = run_job(job, report=DeviceReport(gpus=[], cpu={"usable_cores": 2}), handle_signals=False)
        assert status["state"] == "done"
        paths[file_format] = out / f"frame_0001.{extension}"
    return paths


@pytest.mark.parametrize("file_format", ["PNG", "OPEN_EXR", "JPEG"])
def test_whole_real_frames_pass_and_every_truncation_fails(rendered, file_format, tmp_path):
    data = rendered[file_format].read_bytes()
    assert check_image(str(rendered[file_format])) is None
    damaged = tmp_path / rendered[file_format].name
    for cut in sorted({0, 1, 8, 16, len(data) // 3, len(data) // 2, len(data) - 2, len(data) - 1}):
        damaged.write_bytes(data[:cut])
        assert check_image(str(damaged)) is not None, f"{file_format} cut at {cut} of {len(data)} bytes passed"
    damaged.write_bytes(b"")
    assert check_image(str(damaged)) == "empty file"


def test_png_with_a_corrupt_chunk_or_zero_size_header_fails(rendered, tmp_path):
    data = bytearray(rendered["PNG"].read_bytes())
    assert image_size(str(rendered["PNG"])) == (32, 32)
    flipped = tmp_path / "flipped.png"
    middle = len(data) // 2
    flipped.write_bytes(bytes(data[:middle]) + bytes([data[middle] ^ 0xFF]) + bytes(data[middle + 1 :]))
    assert "corrupt PNG chunk" in check_image(str(flipped))
    header = struct.pack(">IIBBBBB", 0, 32, 8, 2, 0, 0, 0)  # a 0x32 image with a valid CRC
    chunk = struct.pack(">I", 13) + b"IHDR" + header + struct.pack(">I", zlib.crc32(b"IHDR" + header) & 0xFFFFFFFF)
    zero = tmp_path / "zero.png"
    zero.write_bytes(bytes(data[:8]) + chunk + bytes(data[33:]))
    assert check_image(str(zero)) == "PNG with zero size"


def test_a_different_format_under_the_frame_name_fails(rendered, tmp_path):
    wrong = tmp_path / "frame_0001.png"
    wrong.write_bytes(rendered["JPEG"].read_bytes()[:-2])  # a cut JPEG named .png
    assert check_image(str(wrong)) is not None
    text = tmp_path / "frame_0002.exr"
    text.write_text("Blender quit\n")
    assert check_image(str(text)) is not None
