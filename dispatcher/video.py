"""Encode a job's frames into an H.264 MP4 with the ffmpeg that the imageio-ffmpeg wheel ships."""

from __future__ import annotations

import json
import os
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
    path = os.path.join(job_dir, "frames.jsonl")
    if os.path.exists(path):
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                record = json.loads(line)
                if record.get("status") in ("done", "skipped") and record.get("path"):
                    frames[record["frame"]] = record["path"]
    if not frames and extension:
        for frame in range(scene.get("frame_start", 1), scene.get("frame_end", 0) + 1):
            candidate = output_path(spec.output_dir, spec.file_pattern, frame, extension)
            if os.path.exists(candidate):
                frames[frame] = candidate
    return [frames[frame] for frame in sorted(frames) if os.path.exists(frames[frame])]


def _scene(job_dir: str) -> dict:
    try:
        with open(os.path.join(job_dir, "scene.json"), encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return {}


def encode_job(job_dir: str, output: str | None = None, fps: float | None = None, audio: str | None = None) -> str:
    """Write an MP4 of the job's frames (yuv420p, even size); returns its path."""
    spec = jobs.load_spec(job_dir)
    frames = job_frames(job_dir)
    if not frames:
        raise SpecError(f"job {spec.job_id} has no finished frames to encode")
    fps = fps or spec.video_fps or _scene(job_dir).get("fps") or 24.0
    output = output or os.path.join(spec.output_dir, f"{spec.job_id}.mp4")
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False, encoding="utf-8") as listing:
        for frame in frames:
            escaped = frame.replace("'", "'\\''")
            listing.write(f"file '{escaped}'\nduration {1.0 / fps:.6f}\n")
        listing.write(f"file '{frames[-1].replace(chr(39), chr(39) + chr(92) + chr(39) + chr(39))}'\n")
    argv = [ffmpeg_binary(), "-y", "-loglevel", "error", "-f", "concat", "-safe", "0", "-i", listing.name]
    if audio:
        argv += ["-i", audio, "-shortest", "-c:a", "aac"]
    argv += [
        "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", "-r", f"{fps:g}",
        "-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", "18", "-movflags", "+faststart", output,
    ]  # fmt: skip
    try:
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
    finally:
        os.remove(listing.name)
    if result.returncode != 0:
        raise RuntimeError(f"ffmpeg failed: {result.stderr.strip()[-300:]}")
    return output
