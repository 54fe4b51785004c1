"""The job specification: what to render, where, on which lanes. Saved as ``spec.json``."""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field, fields

from .frames import FrameSyntaxError, parse_frames

DEVICE_TYPES = ("OPTIX", "CUDA", "HIP", "ONEAPI", "METAL", "CPU")
GPU_DEVICE_TYPES = DEVICE_TYPES[:-1]
LAYOUTS = ("per-card", "combined", "groups", "auto")
IMAGE_FORMATS = {"PNG": ".png", "OPEN_EXR": ".exr", "OPEN_EXR_MULTILAYER": ".exr", "JPEG": ".jpg", "TIFF": ".tif"}
MOVIE_EXTENSIONS = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".ogv", ".mpg", ".mpeg", ".flv", ".gif")
OVERWRITE_POLICIES = ("skip", "overwrite")
SPEC_VERSION = 1
MAX_RESOLUTION = 65536  # Blender's largest render side
MAX_THREADS = 1024  # Blender's BLENDER_MAX_THREADS
MAX_SAMPLES = 1 << 24  # Cycles' largest sample count


class SpecError(ValueError):
    """Bad input in a job specification (the CLI exits 2 with this message)."""


@dataclass
class JobSpec:
    """Everything a job needs; the add-on and the CLI both build one of these."""

    blend: str
    output_dir: str
    frames: str | None = None  # None: the scene's own range and step
    file_pattern: str = "frame_####"
    file_format: str | None = None  # None: the scene's (a movie format becomes PNG)
    device_type: str | None = None  # None: the best this machine has
    layout: str = "per-card"
    gpus: list[str] | None = None  # indices, UUIDs or PCI ids; None: all
    gpus_per_worker: int = 1  # layout "groups"
    workers_per_gpu: int = 1
    per_gpu: dict = field(default_factory=dict)  # per card (UUID or index): {"device_type", "workers"}
    cpu_lane: bool = False  # an extra CPU lane beside the GPU lanes
    cpu_lanes: int = 0  # CPU lanes when rendering on the CPU (0: auto)
    threads: int | None = None  # per worker; None: cores divided among lanes
    persistent_data: bool = True
    overwrite: str = "overwrite"  # Blender's default; "skip" keeps valid frames already in the folder
    placeholders: bool = False  # the scene's Placeholders: an empty file marks a frame being rendered
    use_file_extension: bool = True  # the scene's File Extensions setting
    wait_for_output: bool = False  # --queue: wait for the job writing the output folder instead of refusing
    blender: str | None = None  # program that runs workers: a Blender binary or a Python with bpy
    trust_scripts: bool = False  # let scripts inside the .blend run (off: --disable-autoexec)
    allow_missing: bool = False  # render even when files the scene needs are missing
    hang_timeout: float = 600.0  # seconds without a progress line before a worker is killed
    first_frame_timeout: float = 3600.0  # the first frame of a lane may compile GPU kernels
    max_lane_failures: int = 3  # consecutive failures before a lane is blocklisted
    video: bool = False
    video_fps: float | None = None
    notify_url: str | None = None  # POST a JSON summary here when the job ends (dispatcher/notify.py)
    backend: str = "local"  # "local" or "ray"
    ray_address: str | None = None
    samples: int | None = None  # override Cycles samples (tests, benchmarks)
    resolution: tuple[int, ...] | None = None  # override resolution WxH (tests, benchmarks)
    job_id: str = ""
    version: int = SPEC_VERSION
    extra: dict = field(default_factory=dict)

    def validate(self) -> JobSpec:
        """Check what can be checked without Blender; raise SpecError with a one-line message."""
        if self.frames is not None:
            try:
                parse_frames(self.frames)
            except FrameSyntaxError as error:
                raise SpecError(str(error)) from None
        if self.device_type is not None:
            self.device_type = self.device_type.upper()
            if self.device_type not in DEVICE_TYPES:
                raise SpecError(f"unknown device type {self.device_type!r} (choose from {', '.join(DEVICE_TYPES)})")
        if self.layout not in LAYOUTS:
            raise SpecError(f"unknown layout {self.layout!r} (choose from {', '.join(LAYOUTS)})")
        if self.file_format is not None:
            self.file_format = self.file_format.upper()
            if self.file_format not in IMAGE_FORMATS:
                raise SpecError(
                    f"file format {self.file_format!r} is not an image format "
                    f"(choose from {', '.join(IMAGE_FORMATS)}; movies are encoded from frames with --video)"
                )
        if self.file_pattern.lower().endswith(MOVIE_EXTENSIONS):
            raise SpecError(
                f"output pattern {self.file_pattern!r} is a movie; render frames (e.g. frame_####.png) "
                "and add --video to encode an MP4"
            )
        if os.sep in self.file_pattern or (os.altsep and os.altsep in self.file_pattern):
            raise SpecError("the file pattern is a name, not a path: put folders in the output directory")
        if self.overwrite not in OVERWRITE_POLICIES:
            raise SpecError(f"overwrite policy must be one of {', '.join(OVERWRITE_POLICIES)}")
        return self._validate_numbers()

    def _validate_numbers(self) -> JobSpec:
        """The counts, limits and names of a spec (the second half of ``validate``)."""
        for name in ("gpus_per_worker", "workers_per_gpu"):
            if getattr(self, name) < 1:
                raise SpecError(f"{name.replace('_', ' ')} must be 1 or more")
        for key, override in self.per_gpu.items():
            kind = (override.get("device_type") or "").upper()
            if kind and kind not in GPU_DEVICE_TYPES:
                raise SpecError(f"GPU {key}: device type {kind!r} is not a GPU backend ({', '.join(GPU_DEVICE_TYPES)})")
            if int(override.get("workers") or 1) < 1:
                raise SpecError(f"GPU {key}: workers must be 1 or more")
        if self.threads is not None and not 1 <= self.threads <= MAX_THREADS:
            raise SpecError(f"threads must be 1 to {MAX_THREADS}")
        if self.cpu_lanes < 0:
            raise SpecError("cpu lanes must be 0 (automatic) or more")
        if self.samples is not None and not 1 <= self.samples <= MAX_SAMPLES:
            raise SpecError(f"samples must be 1 to {MAX_SAMPLES}")
        if self.resolution is not None and len(self.resolution) != 2:
            raise SpecError("resolution must be two numbers, width and height")
        if self.resolution is not None and not all(1 <= side <= MAX_RESOLUTION for side in self.resolution):
            raise SpecError(f"resolution sides must be 1 to {MAX_RESOLUTION} pixels")
        if not all(0 < value < math.inf for value in (self.hang_timeout, self.first_frame_timeout)):
            raise SpecError("timeouts must be positive numbers of seconds")
        if self.video_fps is not None and not 0 < self.video_fps < 1000:
            raise SpecError("video frame rate must be between 0 and 1000")
        if not self.file_pattern.strip() or "\x00" in self.file_pattern or self.file_pattern in (".", ".."):
            raise SpecError(f"file pattern {self.file_pattern!r} is not a usable file name")
        if self.job_id and (os.path.basename(self.job_id) != self.job_id or self.job_id in (".", "..")
                            or "\x00" in self.job_id):  # fmt: skip
            raise SpecError(f"job id {self.job_id!r} is not a plain name (it names the video file)")
        if self.backend not in ("local", "ray"):
            raise SpecError(f"unknown backend {self.backend!r} (local or ray)")
        if self.notify_url:
            from .notify import NotifyUrlError, check_url

            try:
                check_url(self.notify_url)
            except NotifyUrlError as error:
                raise SpecError(str(error)) from None
        return self

    def frame_extension(self) -> str | None:
        """The image extension when known without opening the scene ("" with File Extensions off)."""
        if not self.use_file_extension:
            return ""
        if self.file_format:
            return IMAGE_FORMATS.get(self.file_format)
        return self.extra.get("scene_extension")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> JobSpec:
        known = {f.name for f in fields(cls)}
        spec = cls(**{key: value for key, value in data.items() if key in known})
        if spec.resolution is not None:
            spec.resolution = tuple(spec.resolution)
        return spec

    def save(self, path: str) -> None:
        write_json_atomic(path, self.to_dict())

    @classmethod
    def load(cls, path: str) -> JobSpec:
        with open(path, encoding="utf-8") as handle:
            return cls.from_dict(json.load(handle))

    def identity(self) -> dict:
        """What makes two specs the same job: the file, the output and the frames."""
        return {
            "blend": os.path.realpath(self.blend),
            "output_dir": os.path.realpath(self.output_dir),
            "file_pattern": self.file_pattern,
        }


def write_json_atomic(path: str, data) -> None:
    """Write JSON to a temporary file beside ``path`` and rename it over (readers never see half)."""
    directory = os.path.dirname(os.path.abspath(path))
    temporary = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=1, sort_keys=False, default=str)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:  # a full disk, an I/O error, Ctrl-C: never leave the temporary file behind
        try:
            os.remove(temporary)
        except OSError:
            pass
        raise
