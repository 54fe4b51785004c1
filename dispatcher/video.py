"""Encode a job's frames into an H.264 MP4 with the ffmpeg that the imageio-ffmpeg wheel ships."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile

from . import jobs
from .frames import output_path
from .spec import SpecError


def ffmpeg_binary() -> str:
    try:
        import imageio_ffmpeg
    except ImportError:
        raise SpecError("video encoding needs imageio-ffmpeg (pip install imageio-ffmpeg)") from None
    return imageio_ffmpeg.get_ffmpeg_exe()


def job_frames(job_dir: str) -> list[str]:
    """Paths of the job's finished frames, in frame order."""
    spec = jobs.load_spec(job_dir)
    scene = _scene(job_dir)
    extension = scene.get("file_extension", ".png") if not spec.file_format else None
    frames = {}
    for record in frame_records(os.path.join(job_dir, "frames.jsonl")):
        if record.get("status") in ("done", "skipped") and isinstance(record.get("path"), str):
            frames[record["frame"]] = record["path"]
    if not frames and extension:
        for frame in range(scene.get("frame_start", 1), scene.get("frame_end", 0) + 1):
            candidate = output_path(spec.output_dir, spec.file_pattern, frame, extension)
            if os.path.exists(candidate):
                frames[frame] = candidate
    return [frames[frame] for frame in sorted(frames) if os.path.exists(frames[frame])]


def frame_records(path: str) -> list[dict]:
    """frames.jsonl's records; a half-written last line is skipped, damage anywhere else is a SpecError."""
    try:
        with open(path, "rb") as handle:
            lines = handle.read().decode("utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return []
    records = []
    for number, line in enumerate(lines, 1):
        try:
            record = json.loads(line) if line.strip() else None
        except ValueError:
            record = "damaged"
        if record is None or (record == "damaged" and number == len(lines)):
            continue
        if not isinstance(record, dict) or not isinstance(record.get("frame"), int):
            raise SpecError(f"{path} is damaged at line {number}: not a frame record")
        records.append(record)
    return records


def _scene(job_dir: str) -> dict:
    try:
        with open(os.path.join(job_dir, "scene.json"), encoding="utf-8") as handle:
            scene = json.load(handle)
    except (OSError, ValueError):
        return {}
    return scene if isinstance(scene, dict) else {}  # a cache: damage means asking the worker again


def encode_job(job_dir: str, output: str | None = None, fps: float | None = None, audio: str | None = None) -> str:
    """Write an MP4 of the job's finished frames; returns its path.

    The scene's sound (or ``audio``, a .blend whose sound strips to mix in) needs Blender's own FFmpeg,
    which the worker program has; otherwise the imageio-ffmpeg binary is used when installed, and
    Blender's FFmpeg when it is not (as inside Blender, where that wheel is not shipped).
    """
    spec = jobs.load_spec(job_dir)
    frames = job_frames(job_dir)
    if not frames:
        raise SpecError(f"job {spec.job_id} has no finished frames to encode")
    scene = _scene(job_dir)
    fps = fps or spec.video_fps or scene.get("fps") or 24.0
    output = output or os.path.join(spec.output_dir, f"{spec.job_id}.mp4")
    sound_blend = audio or spec.extra.get("audio_blend") or (spec.blend if scene.get("has_audio") else None)
    if sound_blend or not _has_imageio_ffmpeg():
        return encode_with_blender(frames, output, fps, spec.blender, sound_blend)
    return encode_with_ffmpeg(frames, output, fps)


def record_video(job_dir: str, video: str) -> str:
    """Note the written MP4 in the job's status (``video``), so front ends offer to play it."""
    status = jobs.read_status(job_dir)
    if status is not None and os.path.isfile(video):
        status.video = video
        jobs.write_status(job_dir, status)
    return video


def _has_imageio_ffmpeg() -> bool:
    import importlib.util

    return importlib.util.find_spec("imageio_ffmpeg") is not None


def encode_with_ffmpeg(frames: list[str], output: str, fps: float) -> str:
    """H.264 through the imageio-ffmpeg binary: one video frame per rendered frame, in order."""
    extension = os.path.splitext(frames[0])[1]
    with tempfile.TemporaryDirectory(prefix="grf-encode-") as sequence:
        for index, frame in enumerate(frames):
            link = os.path.join(sequence, f"{index:07d}{extension}")
            try:
                os.link(frame, link)
            except OSError:
                shutil.copyfile(frame, link)
        argv = [
            ffmpeg_binary(), "-y", "-loglevel", "error", "-framerate", f"{fps:g}",
            "-i", os.path.join(sequence, f"%07d{extension}"),
            "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", "18",
            "-movflags", "+faststart", output,
        ]  # fmt: skip
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"ffmpeg failed: {result.stderr.strip()[-300:]}")
    return output


def encode_with_blender(frames: list[str], output: str, fps: float, program: str | None, blend: str | None) -> str:
    """Blender's sequencer and FFmpeg: H.264 video plus the scene's sound strips (AAC)."""
    from .blender_scripts import ENCODE_VIDEO
    from .process import blender_command, default_program

    program = program or default_program()
    if not program:
        raise SpecError("video encoding needs imageio-ffmpeg or Blender (pass --blender)")
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False, encoding="utf-8") as listing:
        listing.write("\n".join(frames) + "\n")
    args = ["--frames", listing.name, "--out", output, "--fps", f"{fps:g}"] + (["--blend", blend] if blend else [])
    argv = blender_command(program, ENCODE_VIDEO, args, autoexec=False)
    try:
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
    finally:
        os.remove(listing.name)
    if result.returncode != 0 or not os.path.exists(output):
        tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"Blender could not encode the video: {tail[0]}")
    return output
