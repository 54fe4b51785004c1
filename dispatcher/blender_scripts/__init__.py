"""Scripts that run inside Blender (a Blender binary or a Python with the bpy module), launched by path.

Nothing here is imported by the engine: ``process.blender_command`` starts each file by its path below.
Each script uses only the standard library and bpy, so it runs without this package on sys.path.
"""

import os

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "worker.py")  # the headless render worker (one per lane)
PREFLIGHT_SCENE = os.path.join(HERE, "preflight_scene.py")  # external files and frame limits, before any frame
VALIDATION_FRAMES = os.path.join(HERE, "validation_frames.py")  # frames for the validation benchmark
FRAME_OUTPUTS = os.path.join(HERE, "frame_outputs.py")  # loaded by the worker: File Output nodes, stereo views
DEMO_SCENE = os.path.join(HERE, "demo_scene.py")  # builds the demo .blend
ENCODE_VIDEO = os.path.join(HERE, "encode_video.py")  # Blender's own FFmpeg encode of a frame list
BENCH_SCENE = os.path.join(HERE, "bench_scene.py")  # builds the benchmark scene
BENCH_TIMING = os.path.join(HERE, "bench_timing.py")  # times Blender's own ways of rendering a range
