"""MP4 encoding: from the CLI, with the scene's sound through Blender's FFmpeg, and without imageio-ffmpeg."""

import math
import re
import struct
import subprocess
import sys
import wave

import imageio_ffmpeg
import pytest
from farmtest import run_cli

from dispatcher import jobs, video
from dispatcher.runner import run_job
from dispatcher.spec import JobSpec


def probe(path) -> tuple[str, int]:
    """ffmpeg's description of the file, and the number of video frames it decodes."""
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    info = subprocess.run([ffmpeg, "-i", str(path)], capture_output=True, text=True).stderr
    decoded = subprocess.run([ffmpeg, "-i", str(path), "-map", "0:v", "-f", "null", "-"], capture_output=True,
                             text=True).stderr  # fmt: skip
    frames = re.findall(r"frame=\s*(\d+)", decoded)
    return info, int(frames[-1]) if frames else 0


def test_render_with_video_writes_an_h264_mp4_of_every_frame(tiny_blend, tmp_path):
    out, job = tmp_path / "out", tmp_path / "job"
    result = run_cli("render", str(tiny_blend), "-o", str(out), "--job-dir", str(job), "--video", "--cpu-lanes", "2")
    assert result.returncode == 0, result.stderr
    movie = jobs.read_status(str(job))["video"]
    info, frames = probe(movie)
    assert "Video: h264" in info and "24 fps" in info
    assert frames == 8


@pytest.fixture(scope="module")
def sound_blend(tmp_path_factory, tiny_blend):
    folder = tmp_path_factory.mktemp("sound")
    tone = folder / "tone.wav"
    with wave.open(str(tone), "wb") as handle:
        handle.setnchannels(1), handle.setsampwidth(2), handle.setframerate(22050)
        handle.writeframes(b"".join(struct.pack("<h", int(8000 * math.sin(i / 10))) for i in range(22050)))
    blend = folder / "with sound.blend"
    script = (
        "import bpy, sys; bpy.ops.wm.open_mainfile(filepath=sys.argv[1]); s = bpy.context.scene; "
        "e = s.sequence_editor_create(); e.strips.new_sound('tone', sys.argv[2], channel=1, frame_start=1); "
        "bpy.ops.wm.save_as_mainfile(filepath=sys.argv[3])"
    )
    subprocess.run([sys.executable, "-c", script, str(tiny_blend), str(tone), str(blend)], check=True,
                   capture_output=True)  # fmt: skip
    return blend


def test_scene_sound_is_mixed_in_through_blenders_ffmpeg(sound_blend, tmp_path):
    spec = JobSpec(blend=str(sound_blend), output_dir=str(tmp_path / "out"), frames="1-8", video=True)
    job_dir = jobs.create_job(spec, job_dir=str(tmp_path / "job"))
    status = run_job(job_dir, handle_signals=False)
    assert status["state"] == "done", status["message"]
    info, frames = probe(status["video"])
    assert "Audio: aac" in info and "Video: h264" in info
    assert frames == 8


def test_encode_without_imageio_ffmpeg_uses_blender(tiny_blend, tmp_path, monkeypatch):
    spec = JobSpec(blend=str(tiny_blend), output_dir=str(tmp_path / "out"), frames="1-5")
    job_dir = jobs.create_job(spec, job_dir=str(tmp_path / "job"))
    assert run_job(job_dir, handle_signals=False)["state"] == "done"
    monkeypatch.setattr(video, "_has_imageio_ffmpeg", lambda: False)
    movie = video.encode_job(job_dir, output=str(tmp_path / "blender made.mp4"))
    info, frames = probe(movie)
    assert "Video: h264" in info and frames == 5


def test_encode_of_a_job_with_no_frames_is_a_clear_error(tiny_blend, tmp_path):
    spec = JobSpec(blend=str(tiny_blend), output_dir=str(tmp_path / "out"))
    job_dir = jobs.create_job(spec, job_dir=str(tmp_path / "job"))
    result = run_cli("encode", job_dir)
    assert result.returncode == 2 and "no finished frames" in result.stderr
