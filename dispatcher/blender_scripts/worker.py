"""Headless render worker: keeps one scene loaded and renders the frames the dispatcher sends.

Run by Blender:  blender -b --factory-startup --disable-autoexec FILE --python worker.py -- [options]
Run by a Python with bpy:  python worker.py -- --blend FILE [options]

Protocol: JSON lines. Commands arrive on stdin ({"cmd": "render", "frame": 7, "path": TMP, "final": PATH},
{"cmd": "configure", "file_format": "PNG"} for a worker started before the format was known, or
{"cmd": "quit"}); events leave on the original stdout ({"event": "ready" | "started" | "frame_start" |
"progress" | "frame_end" | "phase" | "done" | "frame_error" | "fatal" | "bye", ...}; "scene" only with
--inspect; "done" carries "files", [[temporary, final], ...], when a frame made several files). Everything
Blender prints goes to stderr (the lane's log). The worker exits when stdin closes or its parent dies,
so a killed dispatcher leaves nothing behind.
Standalone on purpose: it imports nothing from the dispatcher package.
"""
# long-file: one self-contained file on purpose: Blender runs it by path without this package, and the Ray
# backend ships its source to the nodes as a single file (ray_actor._local_worker_script).

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import sys
import threading
import time

MOVIE_FORMATS = {"FFMPEG", "AVI_JPEG", "AVI_RAW"}
GPU_TYPES = ("OPTIX", "CUDA", "HIP", "ONEAPI", "METAL")
SAMPLE_RE = re.compile(r"Sample (\d+)/(\d+)|Rendering (\d+) / (\d+) samples")  # Cycles | Eevee
KERNEL_RE = re.compile(r"(compil|load)\w* (render |gpu )?kernels?", re.IGNORECASE)


class Channel:
    """The protocol stream: a private copy of stdout, so Blender's own prints cannot corrupt it."""

    def __init__(self) -> None:
        self._stream = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
        os.dup2(2, 1)  # C-level prints (Fra:..., Saved:...) now land in the log
        sys.stdout = sys.stderr
        self._lock = threading.Lock()

    def send(self, event: str, **fields) -> None:
        line = json.dumps({"event": event, **fields}, default=str)
        with self._lock:
            try:
                self._stream.write(line + "\n")
                self._stream.flush()
            except (BrokenPipeError, OSError):
                os._exit(4)  # the dispatcher is gone


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="worker.py")
    parser.add_argument("--blend", help="file to open (when not opened by Blender itself)")
    parser.add_argument("--lane", default="lane")
    parser.add_argument("--device-type", default="CPU", type=str.upper)
    parser.add_argument("--gpu-pci", default="", help="comma list of Cycles PCI addresses (0000:00:06)")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--persistent-data", type=int, default=1)
    parser.add_argument("--file-format", default="")
    parser.add_argument("--samples", type=int, default=0)
    parser.add_argument("--resolution", default="", help="WxH")
    parser.add_argument("--trust", action="store_true", help="let scripts in the .blend run")
    parser.add_argument("--inspect", action="store_true", help="print scene facts as JSON and exit")
    parser.add_argument("--output-facts", action="store_true", help="print the scene's output settings and exit")
    parser.add_argument("--progress-interval", type=float, default=0.25)
    return parser.parse_args(argv)


def script_argv() -> list[str]:
    """Arguments meant for this script: after ``--`` under Blender, all of them under Python."""
    if "--" in sys.argv:
        return sys.argv[sys.argv.index("--") + 1 :]
    return sys.argv[1:]


def die_with_parent() -> None:
    """Ask Linux to kill this worker when the dispatcher dies (kill -9 included)."""
    parent = os.getppid()
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except Exception:
            pass
    if os.getppid() != parent or parent == 1:
        os._exit(5)


def open_blend(bpy, args) -> None:
    if args.blend:
        bpy.ops.wm.open_mainfile(filepath=args.blend, load_ui=False, use_scripts=args.trust)
    if not bpy.data.filepath:
        raise RuntimeError("no .blend file is open")


def scene_facts(bpy, scene) -> dict:
    """What the dispatcher, the autotuner and the add-on need to know about the scene.

    Counted from the meshes as stored (no depsgraph evaluation: that cost seconds before the first frame
    on a large scene); subdivision and array modifiers are allowed for, so the count is an estimate.
    """
    render = scene.render
    triangles, deforming = 0, False
    for obj in scene.objects:
        if obj.type != "MESH":
            continue
        deforming = deforming or is_deforming(obj)
        triangles += mesh_triangles(obj.data) * modifier_factor(obj)
    width = int(render.resolution_x * render.resolution_percentage / 100)
    height = int(render.resolution_y * render.resolution_percentage / 100)
    return {
        "blend": bpy.data.filepath,
        "scene": scene.name,
        "frame_start": scene.frame_start,
        "frame_end": scene.frame_end,
        "frame_step": scene.frame_step,
        "fps": render.fps / (render.fps_base or 1.0),
        "resolution": [width, height],
        "resolution_percentage": render.resolution_percentage,
        "engine": render.engine,
        "samples": scene.cycles.samples if render.engine == "CYCLES" else None,
        "camera": scene.camera is not None,
        "file_format": render.image_settings.file_format,
        "file_extension": render.file_extension,
        "is_movie": render.image_settings.file_format in MOVIE_FORMATS,
        "triangles": triangles,
        "triangles_estimated": True,
        "deforming": deforming,
        "objects": len(scene.objects),
        "estimated_vram_mb": int(256 + triangles * 0.0004 + width * height * 4 * 16 / 2**20),
        "has_audio": any(strip.type == "SOUND" for strip in getattr(scene.sequence_editor, "strips_all", []) or []),
    }


def output_facts(bpy, scene) -> dict:
    """The scene's own output rules (Output properties), cheap to read: no depsgraph evaluation."""
    render = scene.render
    return {
        "blend": bpy.data.filepath,
        "scene": scene.name,
        "filepath": render.filepath,
        "path": bpy.path.abspath(render.filepath),
        "use_file_extension": render.use_file_extension,
        "use_overwrite": render.use_overwrite,
        "use_placeholder": render.use_placeholder,
        "file_format": render.image_settings.file_format,
        "file_extension": render.file_extension,
        "is_movie": render.image_settings.file_format in MOVIE_FORMATS,
        "frame_start": scene.frame_start,
        "frame_end": scene.frame_end,
        "frame_step": scene.frame_step,
        "camera": scene.camera is not None,
    }


def mesh_triangles(mesh) -> int:
    """Triangles of a stored mesh from its faces' corner counts (n corners make n - 2 triangles)."""
    faces = len(mesh.polygons)
    if not faces:
        return 0
    try:
        import numpy

        corners = numpy.empty(faces, dtype=numpy.int32)
        mesh.polygons.foreach_get("loop_total", corners)
        return int(corners.sum()) - 2 * faces
    except ImportError:
        return len(mesh.loops) - 2 * faces


def modifier_factor(obj) -> int:
    factor = 1
    for modifier in obj.modifiers:
        if modifier.type in ("SUBSURF", "MULTIRES") and modifier.show_render:
            factor *= 4 ** int(getattr(modifier, "render_levels", 0))
        elif modifier.type == "ARRAY" and modifier.show_render and modifier.fit_type == "FIXED_COUNT":
            factor *= max(1, int(modifier.count))
    return factor


def is_deforming(obj) -> bool:
    """Geometry that changes per frame, so persistent data cannot reuse it."""
    deforming_modifiers = {"ARMATURE", "CLOTH", "SOFT_BODY", "FLUID", "OCEAN", "DYNAMIC_PAINT", "MESH_CACHE"}
    if any(modifier.type in deforming_modifiers for modifier in obj.modifiers):
        return True
    animated = [obj.animation_data, getattr(obj.data, "animation_data", None)]
    keys = getattr(obj.data, "shape_keys", None)
    animated.append(getattr(keys, "animation_data", None) if keys else None)
    for data in animated:
        if data is None:
            continue
        if data.drivers and len(data.drivers):
            return True
        action = data.action
        if action is None:
            continue
        for curve in iter_fcurves(action):
            if curve.data_path.startswith(("modifiers", "key_blocks", "vertices", "data")):
                return True
    if keys and keys.use_relative and len(keys.key_blocks) > 1 and obj.data.shape_keys.animation_data:
        return True
    node_groups = [modifier.node_group for modifier in obj.modifiers if modifier.type == "NODES"]
    return any(group is not None and uses_time(group) for group in node_groups)


def iter_fcurves(action):
    curves = getattr(action, "fcurves", None)
    if curves is not None:
        yield from curves
        return
    for layer in getattr(action, "layers", []):  # slotted actions (Blender 4.4+)
        for strip in layer.strips:
            for channelbag in getattr(strip, "channelbags", []):
                yield from channelbag.fcurves


def uses_time(node_group) -> bool:
    time_nodes = {"GeometryNodeInputSceneTime", "GeometryNodeSimulationInput"}
    return any(node.bl_idname in time_nodes for node in node_group.nodes)


def configure_devices(bpy, scene, args) -> tuple[list[dict], str | None]:
    """Enable exactly the asked-for Cycles devices; refuse a silent CPU fallback."""
    if scene.render.engine != "CYCLES":
        note = None
        if args.device_type != "CPU":
            note = f"engine {scene.render.engine}: GPU pinning applies to Cycles; the engine picks its own GPU"
        return [], note
    cycles_prefs = bpy.context.preferences.addons["cycles"].preferences
    if args.device_type == "CPU":
        scene.cycles.device = "CPU"
        cycles_prefs.compute_device_type = "NONE"
        return [{"id": "CPU", "name": "CPU", "type": "CPU"}], None
    wanted = [address.lower() for address in args.gpu_pci.split(",") if address]
    note = None
    for device_type in (args.device_type, "CUDA") if args.device_type == "OPTIX" else (args.device_type,):
        chosen = enable_gpu_devices(cycles_prefs, device_type, wanted)
        if chosen:
            if device_type != args.device_type:
                note = f"OptiX not available for this card; rendering with {device_type}"
            scene.cycles.device = "GPU"
            return chosen, note
    found = [f"{device.type}:{device.id}" for device in cycles_prefs.devices if device.type != "CPU"]
    asked = ", ".join(wanted) if wanted else "any"
    raise RuntimeError(
        f"{args.device_type} GPU {asked} is not visible to Cycles (found: {', '.join(found) or 'no GPU'}); "
        "refusing to render on the CPU"
    )


def enable_gpu_devices(cycles_prefs, device_type: str, wanted: list[str]) -> list[dict]:
    try:
        cycles_prefs.compute_device_type = device_type
    except TypeError:
        return []
    cycles_prefs.refresh_devices()
    chosen = []
    for device in cycles_prefs.devices:
        match = device.type == device_type and (
            not wanted or any(device.id.lower().removesuffix("_optix").endswith(address) for address in wanted)
        )
        device.use = match
        if match:
            chosen.append({"id": device.id, "name": device.name, "type": device.type})
    return chosen


def configure_scene(scene, args) -> dict:
    render = scene.render
    render.use_persistent_data = bool(args.persistent_data)
    if args.threads > 0:
        render.threads_mode = "FIXED"
        render.threads = args.threads
    if args.samples > 0 and render.engine == "CYCLES":
        scene.cycles.samples = args.samples
        scene.cycles.use_adaptive_sampling = False
    if args.resolution:
        width, height = (int(value) for value in args.resolution.lower().split("x"))
        render.resolution_x, render.resolution_y, render.resolution_percentage = width, height, 100
    coerced = None
    settings = render.image_settings
    if not args.file_format and settings.file_format in MOVIE_FORMATS:
        coerced, args.file_format = settings.file_format, "PNG"
    if args.file_format:
        set_file_format(scene, args.file_format)
    return {"coerced_from": coerced}


def set_file_format(scene, file_format: str) -> None:
    """The format frames are saved in (``--file-format``, or a ``configure`` command after start-up)."""
    settings = scene.render.image_settings
    media = "MULTI_LAYER_IMAGE" if file_format == "OPEN_EXR_MULTILAYER" else "IMAGE"
    if getattr(settings, "media_type", media) != media:
        settings.media_type = media  # Blender 5.0: the media type decides which formats exist
    settings.file_format = file_format


class Progress:
    """Forwards Cycles' 'Sample i/n' and kernel-compile status lines, at most a few per second."""

    def __init__(self, channel: Channel, interval: float, gpu: bool) -> None:
        self.channel = channel
        self.gpu = gpu
        self.interval = interval
        self.frame: int | None = None
        self.last_sent = 0.0
        self.last_text = ""
        self.error: str | None = None
        self.parent = os.getppid()

    def __call__(self, stats, *_ignored) -> None:
        if os.getppid() != self.parent:
            os._exit(5)
        text = stats if isinstance(stats, str) else ""
        self.last_text = text
        if "error" in text.lower() and self.error is None:
            self.error = text.split("|")[-1].strip()
        now = time.monotonic()
        if self.gpu and KERNEL_RE.search(text):
            self.channel.send("phase", frame=self.frame, phase="compiling GPU kernels", text=text.strip())
            self.last_sent = now
            return
        match = SAMPLE_RE.search(text)
        if match and (now - self.last_sent >= self.interval or len(set(filter(None, match.groups()))) == 1):
            self.last_sent = now
            sample, samples = (int(value) for value in match.groups() if value is not None)
            self.channel.send("progress", frame=self.frame, sample=sample, samples=samples)


def fault(frame: int | None = None, path: str | None = None) -> bool:
    """Test-only fault injection; inert unless GRF_FAULT is set (docs/faults.md).

    GRF_FAULT="ACTION[:frame=N][:lane=NAME][:once=PATH][;...]"; ``once`` fires at most once per PATH.
    exit: exit 1 at start-up. At a frame: crash (half a PNG, then SIGSEGV), hang (report nothing),
    error (a CUDA-style frame error), garbage (a truncated PNG reported done; returns True).
    """
    for rule in filter(None, os.environ.get("GRF_FAULT", "").split(";")):
        action, *conditions = rule.strip().split(":")
        when = dict(item.split("=", 1) for item in conditions if "=" in item)
        if (action == "exit") != (frame is None) or when.get("frame", str(frame)) != str(frame):
            continue
        if when.get("lane", parse_args(script_argv()).lane) != parse_args(script_argv()).lane:
            continue
        if "once" in when:
            try:
                os.close(os.open(when["once"], os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            except FileExistsError:
                continue
        if action == "exit":
            os._exit(1)
        if action == "hang":
            time.sleep(1e6)
        if action == "error":
            raise RuntimeError(f"CUDA error: an illegal memory access was encountered (GRF_FAULT, frame {frame})")
        if action in ("crash", "garbage") and path:
            with open(path, "wb") as handle:
                handle.write(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00")
            if action == "garbage":
                return True
            signal.signal(signal.SIGSEGV, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGSEGV)
    return False


def render_frame(bpy, scene, frame: int, path: str, progress: Progress, outputs=None, final: str = ""):
    """Render one frame; (seconds, [[temporary, final], ...] when it made more than one file, else None)."""
    progress.frame, progress.error = frame, None
    if fault(frame, path):
        return 0.0, None
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    started = time.perf_counter()
    if outputs is not None and outputs.needed:  # File Output nodes, stereo views: Blender names them
        files = outputs.render(bpy, scene, frame, path, final or path)
    else:
        scene.frame_set(frame)
        result = bpy.ops.render.render(write_still=False, scene=scene.name)
        if "FINISHED" not in result:
            raise RuntimeError(f"render ended with {sorted(result)}")
        files = None
    seconds = time.perf_counter() - started
    if progress.error:
        raise RuntimeError(f"render error: {progress.error}")
    if files is None:
        bpy.data.images["Render Result"].save_render(filepath=path, scene=scene)
    return seconds, files  # the dispatcher flushes and decodes the files while this worker goes on


def watch_stdin(commands: list, ready: threading.Event) -> None:
    """Read commands on a thread; end the process when stdin closes (the dispatcher is gone)."""
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            commands.append(json.loads(line))
        except json.JSONDecodeError:
            continue
        ready.set()
    os._exit(0 if commands and commands[-1].get("cmd") == "quit" else 6)


def serve(bpy, scene, channel: Channel, progress: Progress, outputs=None) -> None:
    commands: list[dict] = []
    arrived = threading.Event()
    threading.Thread(target=watch_stdin, args=(commands, arrived), daemon=True).start()
    while True:
        arrived.wait()
        arrived.clear()
        while commands:
            command = commands.pop(0)
            if command.get("cmd") == "quit":
                channel.send("bye")
                os._exit(0)
            if command.get("cmd") == "configure" and command.get("file_format"):  # a worker started warm
                set_file_format(scene, str(command["file_format"]))
                continue
            if command.get("cmd") != "render":
                continue
            frame, path = int(command["frame"]), command["path"]
            received_at = time.time()
            channel.send("started", frame=frame)
            try:
                seconds, files = render_frame(bpy, scene, frame, path, progress, outputs, command.get("final", ""))
            except Exception as error:  # report, stay alive for the next frame
                channel.send("frame_error", frame=frame, error=one_line(error))
                continue
            finished_at = time.time()
            channel.send("done", frame=frame, path=path, seconds=round(seconds, 4), received_at=received_at,
                         finished_at=finished_at, files=files)  # fmt: skip


def sibling(name: str):
    """A script that lives beside this one, loaded by path (Blender does not put this folder on sys.path)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, os.path.join(os.path.dirname(__file__), f"{name}.py"))
    if spec is None or spec.loader is None:
        raise RuntimeError(f"{name}.py is missing beside worker.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cycles_lib_dir() -> str | None:
    """Cycles' kernel folder (its kernel_sm_*.cubin show which cards need no compile)."""
    try:
        import cycles

        return os.path.join(os.path.dirname(cycles.__file__), "lib")
    except Exception:
        return None


def one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def main() -> None:
    times = {"script": time.time()}  # the job's timeline: when each start-up step ended (epoch seconds)
    args = parse_args(script_argv())
    channel = Channel()
    die_with_parent()
    try:
        import bpy

        times["bpy_imported"] = time.time()
        open_blend(bpy, args)
        times["file_opened"] = time.time()
        scene = bpy.context.scene
        if args.inspect:
            channel.send("scene", **scene_facts(bpy, scene))
            os._exit(0)
        if args.output_facts:
            channel.send("output", **output_facts(bpy, scene), preflight=sibling("preflight_scene").collect(bpy))
            os._exit(0)
        output = output_facts(bpy, scene)  # before configure_scene: the scene's own rules (render's warm start)
        settings = configure_scene(scene, args)
        devices, note = configure_devices(bpy, scene, args)
        times["devices_set"] = time.time()
        facts = scene_facts(bpy, scene)
        facts["preflight"] = sibling("preflight_scene").collect(bpy)  # external files, frame limits
        outputs = sibling("frame_outputs").FrameOutputs(bpy, scene, args.lane)
        facts.update(outputs.facts())
        times["scene_facts"] = time.time()
    except Exception as error:
        channel.send("fatal", error=one_line(error))
        os._exit(3)
    fault()
    progress = Progress(channel, args.progress_interval, gpu=args.device_type != "CPU")
    bpy.app.handlers.render_stats.append(progress)
    # Every engine, Workbench and Eevee included, marks where Blender starts and ends rendering a frame.
    bpy.app.handlers.render_pre.append(lambda *_: channel.send("frame_start", frame=progress.frame))
    bpy.app.handlers.render_post.append(lambda *_: channel.send("frame_end", frame=progress.frame))
    channel.send(
        "ready",
        lane=args.lane,
        pid=os.getpid(),
        blender=bpy.app.version_string,
        devices=devices,
        note=note,
        scene=facts,
        visible=os.environ.get("CUDA_VISIBLE_DEVICES"),
        node=socket.gethostname(),
        times=times,
        cycles_lib=cycles_lib_dir(),
        output=output,
        **settings,
    )
    serve(bpy, scene, channel, progress, outputs)


if __name__ == "__main__":
    main()
